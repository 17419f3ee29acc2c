//! `tandem hub`: a share server. It keeps copies of shared threads, synced by
//! app-servers through a small JSON API (DESIGN §7), for readers on other
//! machines while the author's laptop is off.

pub mod api;
pub mod client_ip;
pub mod http;
pub mod live;
pub mod page;
pub mod reader;
pub mod replicas;
pub mod routes;
pub mod secret;
pub mod server;
pub mod state;
pub mod store;

pub use client_ip::{BadCidr, Cidr, TrustedProxies};
pub use http::ConnLimits;
pub use server::{Database, HubError, HubOptions, run, run_with};
pub use state::Limits;

#[cfg(test)]
mod layout {
    //! The crate's top-level modules import one another without a circle
    //! (issue 17: `api` and `reader` once did): state apart, routes on top.

    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    /// Top-level module -> the top-level modules its files name as `crate::…`.
    fn imports() -> BTreeMap<String, BTreeSet<String>> {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut files = vec![src.clone()];
        while let Some(p) = files.pop() {
            if p.is_dir() {
                files.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
                continue;
            }
            let rel = p.strip_prefix(&src).unwrap();
            let top = rel.components().next().unwrap().as_os_str().to_string_lossy();
            let module = top.trim_end_matches(".rs").to_owned();
            if module == "lib" {
                continue; // the root may name every module
            }
            let text = std::fs::read_to_string(&p).unwrap();
            let code = text.lines().filter(|l| !l.trim_start().starts_with("//"));
            let deps = graph.entry(module.clone()).or_default();
            for line in code {
                for (i, _) in line.match_indices("crate::") {
                    let name: String =
                        line[i + 7..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                    if !name.is_empty() && name != module {
                        deps.insert(name);
                    }
                }
            }
        }
        graph
    }

    #[test]
    fn no_module_imports_one_that_imports_it_back() {
        let graph = imports();
        assert!(graph.contains_key("api") && graph.contains_key("reader"), "{graph:?}");
        // A module reaches itself again only through a circle.
        for start in graph.keys() {
            let mut seen = BTreeSet::new();
            let mut todo: Vec<&String> = graph[start].iter().collect();
            while let Some(m) = todo.pop() {
                assert_ne!(m, start, "{start} imports itself back through a circle: {graph:?}");
                if seen.insert(m.clone()) {
                    todo.extend(graph.get(m).into_iter().flatten());
                }
            }
        }
    }
}
