//! The layers of ARCHITECTURE.md ("Layers"), checked on the source: the
//! code of a module of the library names only modules of its own layer or
//! of the layers below it (`crate::` paths, `super::` paths and child
//! modules; comments, doc links included, may point anywhere), and only
//! the code of `src/sys/` names `libc`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// The layers, lowest first, each with its modules (a module's submodules
/// are in its layer unless listed themselves).
const LAYERS: &[(&str, &[&str])] = &[
    ("the vocabulary every layer speaks", &["error", "key"]),
    ("system calls", &["sys"]),
    ("a type's description", &["schema"]),
    ("above sys alone", &["crash", "key::namespace"]),
    ("the protocols' building blocks", &["sync"]),
    ("the format", &["format"]),
    ("an untyped object", &["store"]),
    ("the typed objects", &["cell", "region", "raw", "watch"]),
    ("the tools over objects", &["catalog", "inspect", "fuzzing"]),
];

/// Crossings known to go against the layers, each as (file, the module it
/// names, why it is there and where it belongs). The test fails on a
/// crossing not listed here, and on one listed that is gone (take it off
/// the list then, and off ARCHITECTURE.md's).
const KNOWN: &[(&str, &str, &str)] = &[(
    "src/store/mod.rs",
    "cell::ring",
    "`Store::read_cell` copies a cell's value through the cell's seqlock for the tools; \
     it belongs to `cell/`",
)];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a library file (`src/sys/shm/mod.rs`: `sys::shm`);
/// `None` for the crate root and for the command (a crate of its own).
fn module_of(file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src()).unwrap();
    let parts: Vec<&str> = rel.iter().map(|p| p.to_str().unwrap()).collect();
    if parts[0] == "bin" || parts == ["lib.rs"] {
        return None;
    }
    let mut segments: Vec<&str> = parts.iter().map(|p| p.trim_end_matches(".rs")).collect();
    if segments.last() == Some(&"mod") {
        segments.pop();
    }
    Some(segments.join("::"))
}

/// The layer of a module path: that of the longest listed module it lies
/// in; `None` for a path that names no module of the table.
fn layer_of(module: &str) -> Option<(usize, &'static str)> {
    let mut best: Option<(usize, usize, &'static str)> = None;
    for (rank, (_, modules)) in LAYERS.iter().enumerate() {
        for m in *modules {
            let inside = module == *m || module.starts_with(&format!("{m}::"));
            if inside && best.is_none_or(|(len, _, _)| m.len() > len) {
                best = Some((m.len(), rank, m));
            }
        }
    }
    best.map(|(_, rank, m)| (rank, m))
}

/// What the crate root re-exports, by name: the module each comes from.
fn root_exports() -> BTreeMap<String, String> {
    let lib = fs::read_to_string(src().join("lib.rs")).unwrap();
    let mut out = BTreeMap::new();
    let mut rest = lib.as_str();
    // Only the root's own `pub use` items, which start a line.
    while let Some(at) = rest.find("\npub use ") {
        let stmt = &rest[at + "\npub use ".len()..];
        let end = stmt.find(';').unwrap();
        let stmt = stmt[..end].split_whitespace().collect::<Vec<_>>().join(" ");
        rest = &rest[at + 1..];
        let (prefix, names) = match stmt.split_once("::{") {
            Some((prefix, list)) => (prefix, list.trim_end_matches('}')),
            None => match stmt.rsplit_once("::") {
                Some(split) => split,
                None => continue, // another crate
            },
        };
        let module = prefix.trim_start_matches("crate::");
        for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let name = name.rsplit(" as ").next().unwrap();
            out.insert(name.to_owned(), module.to_owned());
        }
    }
    out
}

/// The code of a file: every line cut at a comment (`//` outside a
/// string literal; the source has no block comments).
fn code(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut in_string = false;
        let mut escaped = false;
        let mut end = line.len();
        let mut prev = ' ';
        for (i, c) in line.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' if in_string => escaped = true,
                '"' if !in_string && prev == '\'' => {} // a character literal
                '"' => in_string = !in_string,
                '/' if !in_string && prev == '/' => {
                    end = i - 1;
                    break;
                }
                _ => {}
            }
            prev = c;
        }
        out.push_str(&line[..end]);
        out.push('\n');
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The paths that start at `root::` in `text` (`root` not preceded by
/// part of an identifier or `::`), as their segments after `root`.
fn paths_from(text: &str, root: &str) -> Vec<(usize, Vec<String>)> {
    let needle = format!("{root}::");
    let mut out = Vec::new();
    for (at, _) in text.match_indices(&needle) {
        let before = &text[..at];
        if before.ends_with(is_ident) || before.ends_with("::") {
            continue;
        }
        let line = before.matches('\n').count() + 1;
        let mut segments = Vec::new();
        let mut rest = &text[at + needle.len()..];
        loop {
            let len = rest.find(|c: char| !is_ident(c)).unwrap_or(rest.len());
            if len == 0 {
                break;
            }
            segments.push(rest[..len].to_owned());
            match rest[len..].strip_prefix("::") {
                Some(next) => rest = next,
                None => break,
            }
        }
        out.push((line, segments));
    }
    out
}

/// The child modules a file declares (`mod x;`, `pub mod x;`, ...).
fn children(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            let decl = l.strip_suffix(';')?;
            let name = decl.rsplit_once("mod ")?.1;
            let vis = decl.rsplit_once("mod ")?.0.trim();
            (vis.is_empty() || vis.starts_with("pub")).then(|| name.to_owned())
        })
        .filter(|n| n.chars().all(is_ident))
        .collect()
}

/// Every module a file names: (line, the module path named).
fn named_modules(
    module: &str,
    text: &str,
    exports: &BTreeMap<String, String>,
) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (line, segments) in paths_from(text, "crate") {
        let Some(first) = segments.first() else {
            continue;
        };
        let named = match exports.get(first) {
            Some(from) => from.clone(),
            None => segments.join("::"),
        };
        out.push((line, named));
    }
    let parent = module.rsplit_once("::").map_or("", |(p, _)| p);
    for (line, segments) in paths_from(text, "super") {
        let mut path = vec![parent.to_owned()];
        let mut rest = segments.as_slice();
        while rest.first().is_some_and(|s| s == "super") {
            path[0] = path[0].rsplit_once("::").map_or("", |(p, _)| p).to_owned();
            rest = &rest[1..];
        }
        path.extend(rest.iter().cloned());
        out.push((line, path.join("::").trim_start_matches("::").to_owned()));
    }
    for child in children(text) {
        for (line, segments) in paths_from(text, &child) {
            let mut path = vec![module.to_owned(), child.clone()];
            path.extend(segments);
            out.push((line, path.join("::")));
        }
    }
    out
}

#[test]
fn no_module_names_a_layer_above_its_own() {
    let exports = root_exports();
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut crossings = Vec::new();
    let mut seen_known = vec![false; KNOWN.len()];
    for file in &files {
        let Some(module) = module_of(file) else {
            continue;
        };
        let (rank, _) = layer_of(&module)
            .unwrap_or_else(|| panic!("{}: in no layer of this test's table", file.display()));
        let text = code(&fs::read_to_string(file).unwrap());
        let rel = file.strip_prefix(src().parent().unwrap()).unwrap();
        for (line, named) in named_modules(&module, &text, &exports) {
            let Some((above, _)) = layer_of(&named) else {
                continue;
            };
            if above <= rank {
                continue;
            }
            if let Some(k) = KNOWN
                .iter()
                .position(|(f, m, _)| Path::new(f) == rel && named.starts_with(m))
            {
                seen_known[k] = true;
                continue;
            }
            crossings.push(format!(
                "{}:{line} ({}) names {named} ({})",
                rel.display(),
                LAYERS[rank].0,
                LAYERS[above].0,
            ));
        }
    }
    for (k, seen) in seen_known.iter().enumerate() {
        if !seen {
            let (file, module, why) = KNOWN[k];
            crossings.push(format!(
                "{file} no longer names {module} ({why}): take it off KNOWN"
            ));
        }
    }
    assert!(
        crossings.is_empty(),
        "modules that name a layer above their own (ARCHITECTURE.md, \"Layers\"):\n{}",
        crossings.join("\n")
    );
}

#[test]
fn only_sys_names_libc() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let sys = src().join("sys");
    let mut found = Vec::new();
    for file in files.iter().filter(|f| !f.starts_with(&sys)) {
        let text = code(&fs::read_to_string(file).unwrap());
        let rel = file.strip_prefix(src().parent().unwrap()).unwrap();
        for (line, _) in paths_from(&text, "libc") {
            found.push(format!("{}:{line}", rel.display()));
        }
        for (n, l) in text.lines().enumerate() {
            if l.contains("use libc") || l.contains("extern crate libc") {
                found.push(format!("{}:{}", rel.display(), n + 1));
            }
        }
    }
    assert!(
        found.is_empty(),
        "libc named outside src/sys/:\n{}",
        found.join("\n")
    );
}

/// The table above is ARCHITECTURE.md's ("Layers", from the top): the
/// same layers in the same order, each with the same modules. (The first
/// test fails on a file of `src/` that is in no layer.)
#[test]
fn the_table_is_the_documents() {
    let doc = fs::read_to_string(src().parent().unwrap().join("ARCHITECTURE.md")).unwrap();
    let section = doc
        .split("\n## Layers\n")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("ARCHITECTURE.md has a section \"Layers\"");
    let rows: Vec<(String, Vec<String>)> = section
        .lines()
        .skip_while(|l| !l.starts_with("| layer | modules |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|row| {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            // The modules are the code spans that name a file or a
            // directory of src/.
            let mut modules: Vec<String> = cells[2]
                .split('`')
                .skip(1)
                .step_by(2)
                .filter(|span| span.ends_with(".rs") || span.ends_with('/'))
                .map(|span| {
                    let span = span.trim_end_matches(".rs").trim_end_matches('/');
                    span.replace('/', "::")
                })
                .collect();
            modules.sort();
            (cells[1].to_owned(), modules)
        })
        .collect();
    let ours: Vec<(String, Vec<String>)> = LAYERS
        .iter()
        .rev()
        .map(|(name, modules)| {
            let mut modules: Vec<String> = modules.iter().map(|m| m.to_string()).collect();
            modules.sort();
            (name.to_string(), modules)
        })
        .collect();
    assert_eq!(
        rows, ours,
        "ARCHITECTURE.md's table of layers and this test's differ"
    );
}

/// The files of `src/` that may hold `unsafe` code, each with why
/// (ARCHITECTURE.md, "Layers", has the same list). Everything else goes
/// through their safe types and functions.
const UNSAFE_ROOMS: &[(&str, &str)] = &[
    (
        "src/sys/shm/mod.rs",
        "a segment's mapping: its pointer, atomic byte access, shmdt",
    ),
    (
        "src/sys/shm/options.rs",
        "detaching an attachment the kernel made at address 0",
    ),
    (
        "src/sys/shm/raw.rs",
        "the shmget, shmat, shmdt and shmctl calls",
    ),
    (
        "src/sys/proc.rs",
        "the calls of the process: kill, geteuid, getpwuid_r, the pid cache's page",
    ),
    ("src/sys/futex.rs", "the futex calls"),
    ("src/sys/eventfd.rs", "the eventfd calls, and poll on it"),
    (
        "src/sys/pipe.rs",
        "poll on an output, to learn its reader has gone",
    ),
    (
        "src/watch/hub.rs",
        "this process's hub, found by its address in the wipe-on-fork word",
    ),
    ("src/sys/mutex.rs", "the pthread calls of the robust mutex"),
    (
        "src/format/mapping.rs",
        "a header and a control block over a mapping's pointer and length",
    ),
    (
        "src/sync/copy.rs",
        "copies through atomic words and the string move",
    ),
    (
        "src/store/mod.rs",
        "the store's kept pointers: the header, slots, the control block, the mutex",
    ),
    (
        "src/store/heap.rs",
        "the heap image standing in for a segment",
    ),
    (
        "src/region/archive.rs",
        "rkyv in place: bytes of a pinned or free buffer, unchecked access",
    ),
    (
        "src/watch/tokio.rs",
        "a subscription's eventfd registered with tokio's reactor (AsyncFd)",
    ),
];

/// What marks a file as holding `unsafe` code.
const UNSAFE_MARKS: &[&str] = &[
    "unsafe {",
    "unsafe fn",
    "unsafe impl",
    "unsafe trait",
    "unsafe extern",
    "allow(unsafe_code)",
];

/// `unsafe` code lies only in the files of [`UNSAFE_ROOMS`], each of which
/// has some; the crate root denies it everywhere else; ARCHITECTURE.md
/// lists the same files and counts them and their `unsafe` blocks.
#[test]
fn unsafe_code_only_in_its_rooms() {
    let root = src().parent().unwrap().to_owned();
    let lib = fs::read_to_string(src().join("lib.rs")).unwrap();
    assert!(
        code(&lib).contains("#![deny(unsafe_code)]"),
        "the crate root denies unsafe_code"
    );
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut outside = Vec::new();
    let mut seen = vec![false; UNSAFE_ROOMS.len()];
    let mut blocks = 0;
    for file in &files {
        let rel = file.strip_prefix(&root).unwrap();
        let text = code(&fs::read_to_string(file).unwrap());
        let room = UNSAFE_ROOMS.iter().position(|(f, _)| Path::new(f) == rel);
        for (n, line) in text.lines().enumerate() {
            let Some(mark) = UNSAFE_MARKS.iter().find(|m| line.contains(*m)) else {
                continue;
            };
            match room {
                Some(r) => seen[r] = true,
                None => outside.push(format!("{}:{}: {mark}", rel.display(), n + 1)),
            }
        }
        if room.is_some() {
            blocks += text.matches("unsafe {").count();
        }
    }
    assert!(
        outside.is_empty(),
        "unsafe code outside the files that may hold it (tests/layers.rs, UNSAFE_ROOMS; \
         ARCHITECTURE.md, \"Layers\"): go through their safe types, or add the file to both \
         lists and say why:\n{}",
        outside.join("\n")
    );
    let idle: Vec<&str> = UNSAFE_ROOMS
        .iter()
        .zip(&seen)
        .filter(|(_, seen)| !**seen)
        .map(|((f, _), _)| *f)
        .collect();
    assert!(
        idle.is_empty(),
        "files listed as holding unsafe code that hold none: take them off UNSAFE_ROOMS \
         and ARCHITECTURE.md: {idle:?}"
    );

    let doc = fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let section = doc
        .split("\n## Layers\n")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("ARCHITECTURE.md has a section \"Layers\"");
    let mut listed: Vec<String> = section
        .lines()
        .skip_while(|l| !l.starts_with("| file that may use `unsafe` |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .filter_map(|row| row.split('`').nth(1).map(|f| format!("src/{f}")))
        .collect();
    listed.sort();
    let mut ours: Vec<String> = UNSAFE_ROOMS.iter().map(|(f, _)| f.to_string()).collect();
    ours.sort();
    assert_eq!(
        listed, ours,
        "ARCHITECTURE.md's files that may use unsafe and UNSAFE_ROOMS differ"
    );
    let count = format!("{} files, {blocks} `unsafe` blocks", UNSAFE_ROOMS.len());
    let words = section.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words.contains(&count),
        "ARCHITECTURE.md (\"Layers\") says \"{count}\""
    );
}
