//! The shape of the code, read by parsing every source file with `syn`: every path into the
//! crate counts (`use` lines and their groups, `pub use`, inline `crate::a::b::f()` and
//! `super::` paths, paths inside macro calls, and names a `use` brought in). The modules'
//! references form no circle, and the vocabulary at the bottom refers to nothing else of
//! ours. Items under `#[cfg(test)]` are left out: tests may reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::Visit;

/// Every module of the library, by path (`pool::rate`), with its file.
fn modules() -> BTreeMap<String, PathBuf> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                found.push(path);
            }
        }
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    files
        .into_iter()
        .filter_map(|file| {
            let relative = file.strip_prefix(&src).unwrap().with_extension("");
            let mut parts: Vec<String> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|p| p == "mod") {
                parts.pop();
            }
            let name = parts.join("::");
            (name != "lib" && name != "main").then_some((name, file))
        })
        .collect()
}

/// `#[cfg(test)]` on an item: test code, left out.
fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|attr| match &attr.meta {
        syn::Meta::List(list) if list.path.is_ident("cfg") => list.tokens.to_string() == "test",
        _ => false,
    })
}

fn item_attrs(item: &syn::Item) -> &[syn::Attribute] {
    use syn::Item::*;
    match item {
        Const(i) => &i.attrs,
        Enum(i) => &i.attrs,
        ExternCrate(i) => &i.attrs,
        Fn(i) => &i.attrs,
        ForeignMod(i) => &i.attrs,
        Impl(i) => &i.attrs,
        Macro(i) => &i.attrs,
        Mod(i) => &i.attrs,
        Static(i) => &i.attrs,
        Struct(i) => &i.attrs,
        Trait(i) => &i.attrs,
        TraitAlias(i) => &i.attrs,
        Type(i) => &i.attrs,
        Union(i) => &i.attrs,
        Use(i) => &i.attrs,
        _ => &[],
    }
}

fn impl_item_attrs(item: &syn::ImplItem) -> &[syn::Attribute] {
    use syn::ImplItem::*;
    match item {
        Const(i) => &i.attrs,
        Fn(i) => &i.attrs,
        Type(i) => &i.attrs,
        Macro(i) => &i.attrs,
        _ => &[],
    }
}

/// The paths a `use` tree names, each as its segments (`use a::{b, c::*}` names `a::b`
/// and `a::c`), with the name each one is known by afterwards (None for a glob).
fn use_paths(tree: &syn::UseTree, prefix: &mut Vec<String>, out: &mut Vec<UsePath>) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            use_paths(&p.tree, prefix, out);
            prefix.pop();
        }
        syn::UseTree::Name(n) => {
            let name = n.ident.to_string();
            let mut path = prefix.clone();
            // `use a::b::{self}` names `a::b`.
            if name != "self" {
                path.push(name.clone());
            }
            let alias = path.last().cloned();
            out.push(UsePath { path, alias });
        }
        syn::UseTree::Rename(r) => {
            let mut path = prefix.clone();
            if r.ident != "self" {
                path.push(r.ident.to_string());
            }
            out.push(UsePath {
                path,
                alias: Some(r.rename.to_string()),
            });
        }
        syn::UseTree::Glob(_) => out.push(UsePath {
            path: prefix.clone(),
            alias: None,
        }),
        syn::UseTree::Group(g) => {
            for tree in &g.items {
                use_paths(tree, prefix, out);
            }
        }
    }
}

struct UsePath {
    path: Vec<String>,
    alias: Option<String>,
}

/// Collects, from one file, every path that may lead into the crate, each with the inline
/// modules (`mod x { .. }`) it was written in.
#[derive(Default)]
struct PathsOf {
    inline: Vec<String>,
    /// Modules declared here (`mod x;` or `mod x { .. }`), by their path below this file.
    children: BTreeSet<Vec<String>>,
    uses: Vec<(Vec<String>, UsePath)>,
    paths: Vec<(Vec<String>, Vec<String>)>,
}

impl<'ast> Visit<'ast> for PathsOf {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        if !is_test_only(item_attrs(item)) {
            syn::visit::visit_item(self, item);
        }
    }

    fn visit_impl_item(&mut self, item: &'ast syn::ImplItem) {
        if !is_test_only(impl_item_attrs(item)) {
            syn::visit::visit_impl_item(self, item);
        }
    }

    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        self.inline.push(item.ident.to_string());
        self.children.insert(self.inline.clone());
        syn::visit::visit_item_mod(self, item);
        self.inline.pop();
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        let mut found = Vec::new();
        use_paths(&item.tree, &mut Vec::new(), &mut found);
        for path in found {
            self.uses.push((self.inline.clone(), path));
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments = path.segments.iter().map(|s| s.ident.to_string()).collect();
        self.paths.push((self.inline.clone(), segments));
        syn::visit::visit_path(self, path);
    }

    /// Macro bodies are tokens, not syntax: every `a::b::c` run of identifiers in them is
    /// taken as a path.
    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.visit_path(&mac.path);
        self.token_paths(mac.tokens.clone());
    }
}

impl PathsOf {
    fn token_paths(&mut self, tokens: TokenStream) {
        let mut run: Vec<String> = Vec::new();
        let mut colons = 0;
        let flush = |run: &mut Vec<String>, paths: &mut Vec<(Vec<String>, Vec<String>)>, inline| {
            if !run.is_empty() {
                paths.push((inline, std::mem::take(run)));
            }
        };
        for token in tokens {
            match token {
                TokenTree::Ident(ident) => {
                    if colons != 2 {
                        flush(&mut run, &mut self.paths, self.inline.clone());
                    }
                    run.push(ident.to_string());
                    colons = 0;
                }
                TokenTree::Punct(p) if p.as_char() == ':' => colons += 1,
                TokenTree::Group(group) => {
                    flush(&mut run, &mut self.paths, self.inline.clone());
                    colons = 0;
                    self.token_paths(group.stream());
                }
                _ => {
                    flush(&mut run, &mut self.paths, self.inline.clone());
                    colons = 0;
                }
            }
        }
        flush(&mut run, &mut self.paths, self.inline.clone());
    }
}

/// The absolute form of a path written in `module` (inside its inline modules `inline`), if
/// it leads into the crate: paths that start with `crate`, `super` or `self`, with a module
/// the file declares, or with a name a `use` of the file brought in (`aliases`). Anything
/// else (std, other crates, locals) does not.
fn absolute(
    module: &str,
    inline: &[String],
    path: &[String],
    seen: &PathsOf,
    aliases: &BTreeMap<String, Vec<String>>,
) -> Option<Vec<String>> {
    let here: Vec<String> = module
        .split("::")
        .map(String::from)
        .chain(inline.iter().cloned())
        .collect();
    let (mut base, rest): (Vec<String>, &[String]) = match path.first().map(String::as_str) {
        Some("crate") => (Vec::new(), &path[1..]),
        Some("super") | Some("self") => (here, path),
        Some(first) => {
            let mut child = inline.to_vec();
            child.push(first.to_string());
            if seen.children.contains(&child) {
                (here, path)
            } else {
                (aliases.get(first)?.clone(), &path[1..])
            }
        }
        None => return None,
    };
    let mut parts = rest.iter().peekable();
    while let Some(first) = parts.peek() {
        match first.as_str() {
            "super" => {
                base.pop();
            }
            "self" => {}
            _ => break,
        }
        parts.next();
    }
    base.extend(parts.cloned());
    Some(base)
}

/// The modules `module` refers to, its own ancestors and itself left out: each path into
/// the crate, resolved to the longest known module it names.
fn imports(module: &str, text: &str, known: &BTreeMap<String, PathBuf>) -> BTreeSet<String> {
    let file = syn::parse_file(text).unwrap_or_else(|e| panic!("{module}: {e}"));
    let mut seen = PathsOf::default();
    seen.visit_file(&file);
    // Names a `use` of this file brought in, by the absolute path they stand for.
    let no_aliases = BTreeMap::new();
    let aliases: BTreeMap<String, Vec<String>> = seen
        .uses
        .iter()
        .filter_map(|(inline, used)| {
            let alias = used.alias.clone()?;
            Some((
                alias,
                absolute(module, inline, &used.path, &seen, &no_aliases)?,
            ))
        })
        .collect();
    let written = seen
        .uses
        .iter()
        .map(|(inline, used)| (inline, &used.path))
        .chain(seen.paths.iter().map(|(inline, path)| (inline, path)));
    let mut found = BTreeSet::new();
    for (inline, path) in written {
        let Some(mut base) = absolute(module, inline, path, &seen, &aliases) else {
            continue;
        };
        while !base.is_empty() {
            let name = base.join("::");
            if known.contains_key(&name) {
                if name != module && !module.starts_with(&format!("{name}::")) {
                    found.insert(name);
                }
                break;
            }
            base.pop();
        }
    }
    found
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let known = modules();
    known
        .iter()
        .map(|(module, file)| {
            let text = std::fs::read_to_string(file).unwrap();
            (module.clone(), imports(module, &text, &known))
        })
        .collect()
}

/// A circle of references in `graph`, if there is one.
fn circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut found = path[at..].to_vec();
            found.push(node.to_string());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, graph, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(found) = visit(node, graph, &mut Vec::new(), &mut done) {
            return Some(found);
        }
    }
    None
}

/// Up to `most` circles: each one found is cut at its closing edge before looking again, so
/// a failure names every circle there is rather than the first.
fn circles(graph: &BTreeMap<String, BTreeSet<String>>, most: usize) -> Vec<Vec<String>> {
    let mut graph = graph.clone();
    let mut found = Vec::new();
    while found.len() < most {
        let Some(next) = circle(&graph) else { break };
        let (from, to) = (&next[next.len() - 2], &next[next.len() - 1]);
        graph.get_mut(from).unwrap().remove(to);
        found.push(next);
    }
    found
}

#[test]
fn the_modules_refer_to_each_other_in_no_circle() {
    let graph = graph();
    assert!(graph.len() > 40, "modules found: {}", graph.len());
    assert!(
        graph["run"].contains("engine") && graph["pool"].contains("vocab"),
        "the scan reads imports: {:?}",
        graph["run"]
    );
    let found = circles(&graph, 10);
    assert!(
        found.is_empty(),
        "modules refer to each other in a circle:\n{}",
        found
            .iter()
            .map(|c| format!("  {}", c.join(" -> ")))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn the_vocabulary_refers_to_nothing_else_of_ours() {
    let graph = graph();
    assert!(graph.contains_key("vocab"), "{:?}", graph.keys());
    for (module, imports) in &graph {
        if module == "vocab" || module.starts_with("vocab::") {
            let outside: Vec<&String> = imports
                .iter()
                .filter(|m| *m != "vocab" && !m.starts_with("vocab::"))
                .collect();
            assert!(outside.is_empty(), "{module} refers to {outside:?}");
        }
    }
}

#[test]
fn a_circle_is_found_when_there_is_one() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    graph.insert("a".into(), ["b".to_string()].into());
    graph.insert("b".into(), ["c".to_string()].into());
    graph.insert("c".into(), ["a".to_string()].into());
    assert_eq!(circle(&graph).unwrap(), ["a", "b", "c", "a"]);
    assert_eq!(circles(&graph, 10), [["a", "b", "c", "a"]]);
    graph.insert("c".into(), BTreeSet::new());
    assert!(circle(&graph).is_none());
}

/// Every way of writing a path into the crate is read, and test code is not.
#[test]
fn every_kind_of_path_is_read() {
    let known: BTreeMap<String, PathBuf> = [
        "m",
        "m::n",
        "m::n::kid",
        "m::sib",
        "m::sib2",
        "m::sib3",
        "m::k",
        "d",
        "e",
        "f",
        "h",
        "i",
        "t",
        "u",
    ]
    .into_iter()
    .map(|m| (m.to_string(), PathBuf::new()))
    .collect();
    let text = r#"
        use crate::d::Thing;
        pub use crate::{e, f::Other};
        use super::sib as renamed;
        use crate::m;
        mod kid;
        fn body() {
            kid::call();
            crate::h::call();
            m::sib2::call();
            let _ = format!("{}", crate::i::NAME);
            let _: super::sib3::Type = Default::default();
        }
        mod inline {
            fn inner() { super::super::k::f() }
        }
        impl Thing {
            #[cfg(test)]
            fn helper() { crate::u::f() }
        }
        #[cfg(test)]
        mod tests {
            use crate::t::Helper;
        }
    "#;
    let found = imports("m::n", text, &known);
    let expected: BTreeSet<String> = [
        "d",
        "e",
        "f",
        "m::sib",
        "h",
        "m::n::kid",
        "m::sib2",
        "i",
        "m::sib3",
        "m::k",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(found, expected);
}

/// The flow of the house: each room (a top-level module) and the rooms it may refer to.
/// Data flows down this list's arrows only: flags -> config -> run -> engines -> the SDK
/// clients and the store -> the summary -> prices -> what Bedrock accepts -> the words
/// every stage shares. A new room must be placed here before it can be used.
const FLOW: &[(&str, &[&str])] = &[
    ("vocab", &[]),
    ("exit", &[]),
    ("signals", &[]),
    ("rules", &["vocab"]),
    ("prices", &["rules", "vocab"]),
    ("summary", &["prices", "rules", "vocab"]),
    ("engine", &["rules", "vocab"]),
    ("bedrock", &["engine", "rules", "vocab"]),
    ("fetch", &["rules", "vocab"]),
    ("job", &["fetch", "rules", "vocab"]),
    ("store", &["summary", "prices", "rules", "vocab"]),
    ("export", &["job", "store", "rules", "vocab"]),
    ("pool", &["engine", "prices", "rules", "vocab"]),
    (
        "batch",
        &[
            "engine", "bedrock", "store", "summary", "prices", "rules", "vocab",
        ],
    ),
    // Watching a run: what the run shows of itself to the world, as it goes.
    (
        "watch",
        &[
            "engine", "summary", "store", "prices", "rules", "vocab", "exit",
        ],
    ),
    // The report page states a run's exit code when its timeline has no end (an older run).
    (
        "report",
        &[
            "engine", "watch", "summary", "prices", "rules", "vocab", "exit",
        ],
    ),
    // An independent Bedrock: it shares with the runner only what AWS accepts.
    ("local_server", &["rules", "vocab"]),
    // Value types its flags parse into, from the rooms that own them.
    (
        "cli",
        &[
            "engine", "job", "store", "report", "export", "rules", "vocab",
        ],
    ),
    (
        "config",
        &[
            "cli",
            "engine",
            "batch",
            "bedrock",
            "fetch",
            "job",
            "local_server",
            "store",
            "prices",
            "rules",
            "vocab",
            "watch",
        ],
    ),
    (
        "run",
        &[
            "config",
            "engine",
            "pool",
            "batch",
            "bedrock",
            "fetch",
            "job",
            "local_server",
            "store",
            "summary",
            "report",
            "watch",
            "prices",
            "rules",
            "vocab",
            "signals",
            "exit",
        ],
    ),
    (
        "commands",
        &[
            "cli",
            "config",
            "batch",
            "bedrock",
            "job",
            "export",
            "local_server",
            "store",
            "summary",
            "report",
            "watch",
            "prices",
            "rules",
            "vocab",
            "signals",
            "exit",
        ],
    ),
];

/// The room a module lives in: its first path segment.
fn room(module: &str) -> &str {
    module.split("::").next().unwrap_or(module)
}

/// Every reference from one room into another that `flow` does not allow, as
/// `from -> to` lines; a room missing from `flow` is named too.
fn against_the_flow(
    graph: &BTreeMap<String, BTreeSet<String>>,
    flow: &[(&str, &[&str])],
) -> Vec<String> {
    let allowed: BTreeMap<&str, &[&str]> = flow.iter().copied().collect();
    let mut found = Vec::new();
    for (module, imports) in graph {
        let from = room(module);
        let Some(may) = allowed.get(from) else {
            found.push(format!("{module}: the room {from} is not placed in FLOW"));
            continue;
        };
        for import in imports {
            let to = room(import);
            if to != from && !may.contains(&to) {
                found.push(format!("{module} -> {import}"));
            }
        }
    }
    found
}

#[test]
fn every_reference_between_rooms_goes_with_the_flow() {
    let graph = graph();
    let found = against_the_flow(&graph, FLOW);
    assert!(
        found.is_empty(),
        "references against the flow (tests/architecture.rs FLOW says who may refer to whom):\n{}",
        found
            .iter()
            .map(|line| format!("  {line}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn an_arrow_against_the_flow_is_found() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    graph.insert("store::ledger".into(), ["summary".to_string()].into());
    graph.insert("summary".into(), BTreeSet::new());
    assert!(against_the_flow(&graph, FLOW).is_empty());
    // The arrows the first step of the house left: the store reaching up into the report,
    // the batch engine reading clap's flags, the vocabulary using anything of ours.
    graph.insert(
        "store::ledger".into(),
        ["summary".to_string(), "report::text_table".to_string()].into(),
    );
    graph.insert("batch::parts".into(), ["cli".to_string()].into());
    graph.insert(
        "vocab::tier".into(),
        ["rules::catalogue".to_string()].into(),
    );
    graph.insert("newroom".into(), BTreeSet::new());
    assert_eq!(
        against_the_flow(&graph, FLOW),
        [
            "batch::parts -> cli",
            "newroom: the room newroom is not placed in FLOW",
            "store::ledger -> report::text_table",
            "vocab::tier -> rules::catalogue",
        ]
    );
}
