wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.body = '{"messages":[{"role":"user","content":[{"text":"Ticket 7: the customer reports that the order arrived damaged. They ask for a refund."}]}],"inferenceConfig":{"maxTokens":64}}'
