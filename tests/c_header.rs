//! `include/shmstore.h` is a single-header library: a translation unit that
//! includes it without defining `SHMSTORE_IMPLEMENTATION` gets the
//! declarations alone, compiles as strict C11 with no POSIX feature macro,
//! pulls in none of the implementation's system headers, and links with the
//! one unit that compiles the implementation (`tests/c/units/`) into a
//! program that reads a cell; so does a C++ unit, through the header's
//! `extern "C"`. Compiled with gcc (a test that finds no gcc says so and
//! passes; without g++ the C++ unit is skipped).

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::names::{NameGuard, fresh_name};
use common::programs::{Programs, root, run, scratch};
use shmstore::{Key, SharedCell};

/// What a user of the header is told to build with: strict C11, every
/// warning an error.
const STRICT: [&str; 5] = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic"];

/// The same for a C++ unit.
const STRICT_CXX: [&str; 7] = [
    "-x",
    "c++",
    "-std=c++11",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-pedantic",
];

/// `declarations`' exit status when the name has no object: 10 +
/// SHMSTORE_ENOTFOUND.
const NOT_FOUND: i32 = 10 + 6;

/// Headers the implementation includes and the declarations do not need.
const IMPLEMENTATION_ONLY: [&str; 17] = [
    "dirent.h",
    "errno.h",
    "fcntl.h",
    "grp.h",
    "poll.h",
    "pthread.h",
    "pwd.h",
    "sched.h",
    "stdatomic.h",
    "stdio.h",
    "stdlib.h",
    "string.h",
    "sys/shm.h",
    "sys/stat.h",
    "sys/syscall.h",
    "time.h",
    "unistd.h",
];

fn unit(name: &str) -> PathBuf {
    root().join("tests/c/units").join(name)
}

/// Run `cc` with `args`, the header's directory on the include path.
fn cc(cc: &str, args: &[&str], input: Option<&Path>) -> Output {
    let mut cmd = Command::new(cc);
    cmd.arg("-I").arg(root().join("include")).args(args);
    if let Some(input) = input {
        cmd.arg(input);
    }
    cmd.output().unwrap_or_else(|e| panic!("run {cc}: {e}"))
}

fn succeeded(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The headers that preprocessing `source` (C11, no feature macro) reads,
/// as gcc's `-H` lists them: one a line, after dots giving the depth.
fn headers_read(source: &str) -> Vec<String> {
    let mut child = Command::new("gcc")
        .arg("-I")
        .arg(root().join("include"))
        .args(["-std=c11", "-E", "-H", "-x", "c", "-", "-o", "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run gcc -E -H");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(source.as_bytes())
        .expect("write the source");
    let out = child.wait_with_output().expect("wait for gcc -E -H");
    succeeded(&format!("gcc -E -H on {source:?}"), &out);
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with('.'))
        .map(|l| l.trim_start_matches('.').trim().to_owned())
        .collect()
}

#[test]
fn the_declarations_compile_strictly_and_include_none_of_the_implementations_headers() {
    let Some(dir) = scratch("declarations") else {
        return;
    };
    let object = dir.exe("declarations.o");
    let out = cc(
        "gcc",
        &[&STRICT[..], &["-c", "-o", object.to_str().unwrap()]].concat(),
        Some(&unit("declarations.c")),
    );
    succeeded("gcc on declarations.c (strict C11, no feature macro)", &out);

    let read = headers_read("#include \"shmstore.h\"\n");
    assert!(
        read.iter().any(|h| h.ends_with("/shmstore.h")),
        "gcc -H listed no shmstore.h: {read:?}"
    );
    for header in IMPLEMENTATION_ONLY {
        // The file `#include <HEADER>` reads, as it is listed first.
        let path = headers_read(&format!("#include <{header}>\n"))
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("gcc -H listed nothing for <{header}>"));
        assert!(
            !read.contains(&path),
            "the declarations include <{header}> ({path}): {read:?}"
        );
    }
}

/// Compile `units` (`(source, compiler, flags)`) into objects in `dir` and
/// return their paths.
fn objects(dir: &Programs, units: &[(&str, &str, &[&str])]) -> Vec<String> {
    units
        .iter()
        .map(|(source, compiler, flags)| {
            let object = dir.exe(&format!("{source}.{compiler}.o"));
            let object = object.to_str().unwrap().to_owned();
            let out = cc(
                compiler,
                &[flags, &["-c", "-o", object.as_str()][..]].concat(),
                Some(&unit(source)),
            );
            succeeded(&format!("{compiler} on {source}"), &out);
            object
        })
        .collect()
}

/// Link `objects` with `linker` into `dir`'s program `name`.
fn link(linker: &str, objects: &[String], dir: &Programs, name: &str) -> Output {
    let exe = dir.exe(name);
    let mut args: Vec<&str> = objects.iter().map(String::as_str).collect();
    args.extend(["-o", exe.to_str().unwrap()]);
    cc(linker, &args, None)
}

#[test]
fn a_unit_without_the_implementation_links_with_the_one_that_has_it() {
    let Some(dir) = scratch("two-units") else {
        return;
    };
    let built = objects(
        &dir,
        &[
            ("declarations.c", "gcc", &STRICT),
            ("implementation.c", "gcc", &STRICT),
        ],
    );

    // The declarations define nothing: alone, they do not link.
    let alone = link("gcc", &built[..1], &dir, "alone");
    let said = String::from_utf8_lossy(&alone.stderr);
    assert!(
        !alone.status.success() && said.contains("shmstore_open_name"),
        "the declarations linked alone: {alone:?}"
    );
    succeeded("linking the two units", &link("gcc", &built, &dir, "two"));

    let name = fresh_name("c-two-units");
    let _names = NameGuard::of(&name);
    let absent = run(&dir, "two", &[&name]);
    assert_eq!(absent.status.code(), Some(NOT_FOUND), "{absent:?}");
    let _cell = SharedCell::<[u64; 4]>::options()
        .remove_on_drop(true)
        .create(Key::named(&name).unwrap(), [2, 7, 1, 8])
        .expect("create the cell");
    let out = run(&dir, "two", &[&name]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    let has_gxx = Command::new("g++")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_gxx {
        println!("skipping the C++ unit: g++ not found");
        return;
    }
    let cxx = objects(&dir, &[("declarations.c", "g++", &STRICT_CXX)]);
    let both = [cxx[0].clone(), built[1].clone()];
    succeeded(
        "linking a C++ unit with the implementation",
        &link("g++", &both, &dir, "cxx"),
    );
    let out = run(&dir, "cxx", &[&name]);
    assert_eq!(out.status.code(), Some(0), "C++: {out:?}");
}

/// The example of the header's first comment, as the files it names:
/// `(file name, source)` of each block of lines indented under ` * ` whose
/// first line is a `// FILE.c` comment.
fn header_example() -> Vec<(String, String)> {
    let header = std::fs::read_to_string(root().join("include/shmstore.h")).expect("read header");
    let comment = &header[..header.find("*/").expect("the header's first comment")];
    let mut files: Vec<(String, String)> = Vec::new();
    let mut in_block = false;
    for line in comment.lines() {
        if let Some(code) = line.strip_prefix(" *     ") {
            let name = code.strip_prefix("// ").and_then(|c| c.split(':').next());
            if let Some(name) = name.filter(|n| n.ends_with(".c")) {
                files.push((name.to_owned(), String::new()));
                in_block = true;
            }
            if !in_block {
                continue;
            }
            let source = &mut files.last_mut().expect("a file").1;
            source.push_str(code);
            source.push('\n');
        } else if line.trim_end() == " *" && in_block {
            files.last_mut().expect("a file").1.push('\n');
        } else {
            in_block = false;
        }
    }
    files
}

#[test]
fn the_headers_example_compiles_and_reads_a_cell() {
    let Some(dir) = scratch("example") else {
        return;
    };
    let files = header_example();
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["shmstore.c", "counter.c"], "the example's files");
    for (name, source) in &files {
        std::fs::write(dir.exe(name), source).expect("write the example");
    }
    let exe = dir.exe("counter");
    let mut args: Vec<&str> = STRICT.to_vec();
    let sources: Vec<PathBuf> = names.iter().map(|n| dir.exe(n)).collect();
    args.extend(sources.iter().map(|s| s.to_str().unwrap()));
    args.extend(["-o", exe.to_str().unwrap()]);
    succeeded("gcc on the header's example", &cc("gcc", &args, None));

    let name = fresh_name("c-example");
    let _names = NameGuard::of(&name);
    let _cell = SharedCell::<u64>::options()
        .remove_on_drop(true)
        .create(Key::named(&name).unwrap(), 42)
        .expect("create the cell");
    let out = run(&dir, "counter", &[&name]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{name} = 42 (version 0)\n"),
        "{out:?}"
    );
    assert!(out.status.success(), "{out:?}");
}
