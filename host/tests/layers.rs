//! Dependencies point one way. The host's modules stand in layers, ground
//! floor first; a module may use (`crate::…`) only modules of the layers
//! below its own. This test reads every `crate::` path of the crate's
//! sources (in code, `use` trees and macro bodies) and fails on an arrow
//! against the order — a cycle is one — or on a module placed in no layer.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// Ground floor first. Same-layer modules may not use each other either.
const LAYERS: &[&[&str]] = &[
    // Plain data and pure decisions, the process's own stdio, and who
    // can be asked for input in the middle of a call.
    &["redact", "policy", "stdio", "ask"],
    // The plain-typed door between sandbox and sessions.
    &["gateway"],
    &["metrics", "search"],
    // State a fleet's replicas share on Redis.
    &["fleet"],
    // The one gate every call passes; recording stands where the gate does.
    &["gate", "recording"],
    &["config"],
    // The two halves that never meet but through the gateway.
    &["sandbox", "session", "builtin"],
    &["plugins"],
    &["runtime"],
    // Code mode runs scripts as plugin runs of its runtime.
    &["code"],
    // Front ends.
    &["serve"],
    &["fuzzing"],
];

/// Every `crate::MODULE` a file names.
#[derive(Default)]
struct CrateRefs(Vec<String>);

impl CrateRefs {
    fn tokens(&mut self, tokens: &proc_macro2::TokenStream) {
        let words: Vec<String> = tokens
            .to_string()
            .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .map(str::to_owned)
            .collect();
        let text = words.join(" ");
        let mut rest = text.as_str();
        while let Some(at) = rest.find("crate") {
            let after = rest[at + "crate".len()..].trim_start();
            if let Some(path) = after.strip_prefix("::") {
                let name: String = path
                    .trim_start()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    self.0.push(name);
                }
            }
            rest = &rest[at + "crate".len()..];
        }
    }
}

impl<'ast> Visit<'ast> for CrateRefs {
    fn visit_path(&mut self, path: &'ast syn::Path) {
        let mut segments = path.segments.iter();
        if let (Some(first), Some(second)) = (segments.next(), segments.next())
            && first.ident == "crate"
        {
            self.0.push(second.ident.to_string());
        }
        syn::visit::visit_path(self, path);
    }

    fn visit_use_tree(&mut self, tree: &'ast syn::UseTree) {
        if let syn::UseTree::Path(p) = tree
            && p.ident == "crate"
        {
            let mut names = Vec::new();
            first_names(&p.tree, &mut names);
            self.0.extend(names);
            return;
        }
        syn::visit::visit_use_tree(self, tree);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.tokens(&mac.tokens);
        syn::visit::visit_macro(self, mac);
    }
}

/// The first names of a `use crate::{…}` tree.
fn first_names(tree: &syn::UseTree, names: &mut Vec<String>) {
    match tree {
        syn::UseTree::Path(p) => names.push(p.ident.to_string()),
        syn::UseTree::Name(n) => names.push(n.ident.to_string()),
        syn::UseTree::Rename(r) => names.push(r.ident.to_string()),
        syn::UseTree::Group(g) => g.items.iter().for_each(|t| first_names(t, names)),
        syn::UseTree::Glob(_) => {}
    }
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read src")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a source file belongs to (`None`: `lib.rs`).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).expect("under src");
    let first = rel.components().next()?.as_os_str().to_str()?.to_owned();
    let name = first.trim_end_matches(".rs").to_owned();
    (name != "lib").then_some(name)
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

#[test]
fn dependencies_point_one_way() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut edges: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let mut modules = std::collections::BTreeSet::new();
    for file in &files {
        let Some(module) = module_of(&src, file) else {
            continue;
        };
        modules.insert(module.clone());
        let text = std::fs::read_to_string(file).expect("read source");
        let ast = syn::parse_file(&text)
            .unwrap_or_else(|e| panic!("{} does not parse: {e}", file.display()));
        let mut refs = CrateRefs::default();
        refs.visit_file(&ast);
        for used in refs.0 {
            if used != module {
                let shown = file.strip_prefix(&src).expect("under src").display();
                edges
                    .entry((module.clone(), used))
                    .or_default()
                    .push(shown.to_string());
            }
        }
    }
    assert!(
        modules.len() > 10,
        "found only {modules:?}: is the source tree where it was?"
    );
    let unplaced: Vec<&String> = modules.iter().filter(|m| layer_of(m).is_none()).collect();
    assert!(
        unplaced.is_empty(),
        "modules in no layer of LAYERS: {unplaced:?}"
    );
    let mut against = Vec::new();
    for ((from, to), files) in &edges {
        let (Some(a), Some(b)) = (layer_of(from), layer_of(to)) else {
            // A name that is no module of the crate (a re-exported item).
            continue;
        };
        if b >= a {
            let mut files = files.clone();
            files.dedup();
            against.push(format!(
                "{from} (layer {a}) uses {to} (layer {b}) in {}",
                files.join(", ")
            ));
        }
    }
    assert!(
        against.is_empty(),
        "dependencies against the order:\n  {}",
        against.join("\n  ")
    );
}

/// The scanner itself sees `crate::` in every place it can hide.
#[test]
fn crate_paths_are_found_everywhere() {
    let file: syn::File = syn::parse_quote! {
        use crate::{alpha::A, beta};
        fn f() -> crate::gamma::G {
            let _ = crate::delta::d();
            tracing::info!(x = %crate::epsilon::E, "m");
        }
    };
    let mut refs = CrateRefs::default();
    refs.visit_file(&file);
    let mut found = refs.0;
    found.sort();
    found.dedup();
    assert_eq!(found, ["alpha", "beta", "delta", "epsilon", "gamma"]);
}
