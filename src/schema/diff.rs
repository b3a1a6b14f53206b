//! What differs between two schemas, field by field, in words: what an
//! open refused for a type that changed says.

use super::shape::{Fields, Shape};

/// The most differences listed; past it, one line says how many more.
const LISTED: usize = 12;

/// The differences between the schema `stored` and the schema `requested`,
/// each a sentence naming the field (`limits.max_conn`; `the root` for the
/// whole value): fields added, removed, reordered or retyped, variants
/// added, removed or retagged, types renamed. Empty when they are equal.
pub fn differences(stored: &Shape, requested: &Shape) -> Vec<String> {
    let mut out = Vec::new();
    walk(stored, requested, "", &mut out);
    if out.len() > LISTED {
        let more = out.len() - LISTED;
        out.truncate(LISTED);
        out.push(format!("and {more} more"));
    }
    out
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

fn at(path: &str) -> String {
    if path.is_empty() {
        "the root".to_owned()
    } else {
        format!("`{path}`")
    }
}

fn walk(stored: &Shape, requested: &Shape, path: &str, out: &mut Vec<String>) {
    if stored == requested {
        return;
    }
    match (stored, requested) {
        (
            Shape::Struct {
                name: a,
                fields: fa,
            },
            Shape::Struct {
                name: b,
                fields: fb,
            },
        ) => {
            if a != b {
                out.push(format!("{}: type `{a}` is now `{b}`", at(path)));
            }
            fields(fa, fb, path, out);
        }
        (
            Shape::Enum {
                name: a,
                variants: va,
            },
            Shape::Enum {
                name: b,
                variants: vb,
            },
        ) => {
            if a != b {
                out.push(format!("{}: type `{a}` is now `{b}`", at(path)));
            }
            for v in vb {
                let p = join(path, &v.name);
                match va.iter().find(|s| s.name == v.name) {
                    None => out.push(format!("variant `{p}` added (tag {})", v.tag)),
                    Some(s) => {
                        if s.tag != v.tag {
                            out.push(format!("variant `{p}`: tag {} is now {}", s.tag, v.tag));
                        }
                        match (&s.fields, &v.fields) {
                            (Some(x), Some(y)) => fields(x, y, &p, out),
                            (None, None) => {}
                            (None, Some(_)) => {
                                out.push(format!("variant `{p}`: it had no fields and now has"))
                            }
                            (Some(_), None) => {
                                out.push(format!("variant `{p}`: it had fields and now has none"))
                            }
                        }
                    }
                }
            }
            for s in va {
                if !vb.iter().any(|v| v.name == s.name) {
                    out.push(format!("variant `{}` removed", join(path, &s.name)));
                }
            }
            let order = |vs: &[super::shape::Variant]| -> Vec<String> {
                vs.iter()
                    .filter(|v| va.iter().any(|a| a.name == v.name))
                    .filter(|v| vb.iter().any(|b| b.name == v.name))
                    .map(|v| v.name.clone())
                    .collect()
            };
            let (oa, ob) = (order(va), order(vb));
            if oa != ob {
                out.push(format!(
                    "{}: the variants are in another order (stored: {}; requested: {})",
                    at(path),
                    oa.join(", "),
                    ob.join(", ")
                ));
            }
        }
        (Shape::Vec(a), Shape::Vec(b))
        | (Shape::BoxSlice(a), Shape::BoxSlice(b))
        | (Shape::HashSet(a), Shape::HashSet(b))
        | (Shape::BTreeSet(a), Shape::BTreeSet(b)) => walk(a, b, &join(path, "[]"), out),
        (Shape::Option(a), Shape::Option(b)) => walk(a, b, &join(path, "Some"), out),
        (Shape::Box(a), Shape::Box(b)) => walk(a, b, path, out),
        (Shape::Result(oa, ea), Shape::Result(ob, eb)) => {
            walk(oa, ob, &join(path, "Ok"), out);
            walk(ea, eb, &join(path, "Err"), out);
        }
        (Shape::Array(a, n), Shape::Array(b, m)) => {
            if n != m {
                out.push(format!("{}: {n} elements are now {m}", at(path)));
            }
            walk(a, b, &join(path, "[]"), out);
        }
        (Shape::HashMap(ka, va), Shape::HashMap(kb, vb))
        | (Shape::BTreeMap(ka, va), Shape::BTreeMap(kb, vb)) => {
            walk(ka, kb, &join(path, "key"), out);
            walk(va, vb, &join(path, "value"), out);
        }
        (Shape::Tuple(a), Shape::Tuple(b)) => fields(
            &Fields::Unnamed(a.clone()),
            &Fields::Unnamed(b.clone()),
            path,
            out,
        ),
        _ => out.push(format!("{}: {stored} is now {requested}", at(path))),
    }
}

fn fields(stored: &Fields, requested: &Fields, path: &str, out: &mut Vec<String>) {
    let a: Vec<(String, &Shape)> = stored.iter().collect();
    let b: Vec<(String, &Shape)> = requested.iter().collect();
    match (stored, requested) {
        (Fields::Named(_), Fields::Unnamed(_)) => {
            out.push(format!(
                "{}: its fields were named and are now unnamed",
                at(path)
            ));
            return;
        }
        (Fields::Unnamed(_), Fields::Named(_)) => {
            out.push(format!(
                "{}: its fields were unnamed and are now named",
                at(path)
            ));
            return;
        }
        _ => {}
    }
    for (name, shape) in &b {
        let p = join(path, name);
        match a.iter().find(|(n, _)| n == name) {
            None => out.push(format!("field `{p}` added ({shape})")),
            Some((_, s)) => walk(s, shape, &p, out),
        }
    }
    for (name, shape) in &a {
        if !b.iter().any(|(n, _)| n == name) {
            out.push(format!(
                "field `{}` removed (was {shape})",
                join(path, name)
            ));
        }
    }
    // The fields both have, in each one's order.
    let common_a: Vec<&str> = a
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| b.iter().any(|(m, _)| m == n))
        .collect();
    let common_b: Vec<&str> = b
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| a.iter().any(|(m, _)| m == n))
        .collect();
    if common_a != common_b {
        let moved: Vec<String> = common_a
            .iter()
            .zip(&common_b)
            .filter(|(x, y)| x != y)
            .map(|(x, _)| format!("`{}`", join(path, x)))
            .collect();
        out.push(format!(
            "fields {} are in another order (stored: {}; requested: {})",
            moved.join(", "),
            common_a.join(", "),
            common_b.join(", ")
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diff(a: &str, b: &str) -> Vec<String> {
        differences(
            &Shape::parse(a.as_bytes()).unwrap(),
            &Shape::parse(b.as_bytes()).unwrap(),
        )
    }

    #[test]
    fn each_change_names_its_field() {
        assert!(diff("S{a:u32,b:u32}", "S{a:u32,b:u32}").is_empty());
        let swapped = diff("S{a:u32,b:u32}", "S{b:u32,a:u32}");
        assert_eq!(swapped.len(), 1, "{swapped:?}");
        assert!(
            swapped[0].contains("`a`") && swapped[0].contains("`b`"),
            "{swapped:?}"
        );
        assert_eq!(
            diff("S{l:L{max:u32}}", "S{l:L{max:f32}}"),
            ["`l.max`: u32 is now f32"]
        );
        assert_eq!(
            diff("S{a:u32}", "S{b:u32}"),
            ["field `b` added (u32)", "field `a` removed (was u32)"]
        );
        assert_eq!(
            diff("S{m:enum M{A=0,B=1}}", "S{m:enum M{A=0,B=1,C=2}}"),
            ["variant `m.C` added (tag 2)"]
        );
        assert_eq!(
            diff("S{a:u8}", "T{a:u8}"),
            ["the root: type `S` is now `T`"]
        );
        assert_eq!(
            diff("S{v:vec<u8>}", "S{v:vec<u16>}"),
            ["`v.[]`: u8 is now u16"]
        );
        assert_eq!(
            diff("enum E{A=0,B=1}", "enum E{B=1,A=0}"),
            ["the root: the variants are in another order (stored: A, B; requested: B, A)"]
        );
        assert_eq!(
            diff("S{r:result<u8,str>}", "S{r:result<u8,u16>}"),
            ["`r.Err`: str is now u16"]
        );
        assert_eq!(
            diff("S{a:option<option<u8>>}", "S{a:option<u8>}"),
            ["`a.Some`: option<u8> is now u8"]
        );
        assert_eq!(
            diff("enum E{A=0(u8)}", "enum E{A=0{x:u8}}"),
            ["`A`: its fields were unnamed and are now named"]
        );
    }
}
