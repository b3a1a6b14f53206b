//! rkyv 0.8's maps and sets, decoded by a schema (FORMAT.md, "Maps and
//! sets"), trusting nothing in the bytes.
//!
//! - `hash_map<K,V>` and `hash_set<K>` (a map to `()`) are a Swiss table:
//!   a relative pointer to the control bytes, the number of entries and the
//!   capacity (`u32` each). Entry `i` (a `repr(C)` pair of key and value)
//!   lies `(i + 1)` entries before the control bytes, and holds a value when
//!   control byte `i` has its top bit clear; exactly `len` of the first
//!   `cap` do.
//! - `btree_map<K,V>` and `btree_set<K>` are a B-tree of nodes of 5
//!   entries: a relative pointer to the root node and the number of
//!   entries. A node is a kind byte (0 leaf, 1 inner), 5 keys, 5 values;
//!   a leaf then has the number of its entries in use (`u32`), an inner
//!   node (always full) 5 pointers to lesser nodes, one before each entry,
//!   and one to a greater node after the last, any of which may be the
//!   invalid pointer `1` (no node). In order: each lesser node, then its
//!   entry, and the greater node last.

use super::shape::{Layout, Shape};
use std::collections::HashSet;

use super::value::{Input, Path, Res, Value, fail};

/// A Swiss table's control bytes come in groups of this many.
const GROUP: usize = 16;
/// Entries in a B-tree node.
const NODE_ENTRIES: usize = 5;
/// The deepest a B-tree may be: far more than `u32::MAX` entries need.
const BTREE_DEPTH_MAX: usize = 16;
/// A relative pointer's offset that means "no node".
const INVALID: i32 = 1;

/// Decode the map or set of `shape` at `at`.
pub(super) fn decode(
    input: &mut Input<'_>,
    shape: &Shape,
    at: usize,
    path: &Path<'_>,
) -> Res<Value> {
    let unit = Shape::Unit;
    let (key, value, set) = match shape {
        Shape::HashMap(k, v) | Shape::BTreeMap(k, v) => (&**k, &**v, false),
        Shape::HashSet(k) | Shape::BTreeSet(k) => (&**k, &unit, true),
        other => return fail(path, format!("{other} is not a map")),
    };
    let mut entries = Vec::new();
    match shape {
        Shape::HashMap(..) | Shape::HashSet(..) => hash(input, key, value, at, path, &mut entries)?,
        _ => {
            let len = input.u32_at(at + 4, path)? as usize;
            if len > 0 {
                let root = input.target(at, path)?;
                let (k, v) = (input.layout(key, path)?, input.layout(value, path)?);
                let node = Node::of(key, value, k, v).or_else(|e| fail(path, e))?;
                btree(input, &node, root, 0, path, &mut entries)?;
            }
            if entries.len() != len {
                return fail(
                    path,
                    format!("a B-tree of {len} entries holds {}", entries.len()),
                );
            }
        }
    }
    // A key twice is no map rkyv wrote, and would be one entry of two in
    // a JSON object: refused, as every reader refuses it. (Keys compared
    // by their text, which is as long as the output already counted.)
    let mut seen = HashSet::new();
    for (k, _) in &entries {
        if !seen.insert(k.to_string()) {
            return fail(path, format!("the key {k} is in the map twice"));
        }
    }
    Ok(if set {
        Value::List(entries.into_iter().map(|(k, _)| k).collect())
    } else {
        Value::Map(entries)
    })
}

fn hash(
    input: &mut Input<'_>,
    key: &Shape,
    value: &Shape,
    at: usize,
    path: &Path<'_>,
    out: &mut Vec<(Value, Value)>,
) -> Res<()> {
    let len = input.u32_at(at + 4, path)? as usize;
    let cap = input.u32_at(at + 8, path)? as usize;
    if len == 0 {
        return Ok(());
    }
    if len >= cap {
        return fail(
            path,
            format!("a hash table of {len} entries in {cap} buckets"),
        );
    }
    // An entry is a `repr(C)` pair: the key, then the value at its
    // alignment.
    let (k, v) = (input.layout(key, path)?, input.layout(value, path)?);
    let align = k.align.max(v.align);
    let value_at = k.size.next_multiple_of(v.align);
    let Some(size) = value_at
        .checked_add(v.size)
        .and_then(|n| n.checked_next_multiple_of(align))
    else {
        return fail(path, "a map entry too large");
    };
    let offsets = [0, value_at];
    let entry = Layout { size, align };
    let controls = input.target(at, path)?;
    // Every control byte is looked at: counted, so that many maps over one
    // large table cannot make the work grow with their product.
    input.spend(cap, path)?;
    // The whole table lies in the archive: `cap` buckets before the
    // control bytes, and the control bytes (rkyv writes `cap` rounded up to
    // a group of 16, and 15 more).
    let control_count = cap.next_multiple_of(GROUP) + GROUP - 1;
    let table = cap
        .checked_mul(entry.size)
        .and_then(|b| controls.checked_sub(b).map(|start| (start, b)));
    let Some((start, buckets)) = table else {
        return fail(
            path,
            format!("a hash table of {cap} buckets lies before the archive"),
        );
    };
    input.take(start, buckets + control_count, entry.align, path)?;
    let control_bytes = input.take(controls, cap, 1, path)?.to_vec();
    let full = control_bytes.iter().filter(|&&c| c & 0x80 == 0).count();
    if full != len {
        return fail(
            path,
            format!("a hash table of {len} entries has {full} full buckets"),
        );
    }
    input.spend(full.saturating_mul(16), path)?;
    for (i, c) in control_bytes.iter().enumerate() {
        if c & 0x80 != 0 {
            continue;
        }
        let back = (i + 1)
            .checked_mul(entry.size)
            .and_then(|n| controls.checked_sub(n));
        let Some(start) = back else {
            return fail(path, format!("bucket {i} lies before the archive"));
        };
        input.take(start, entry.size, entry.align, path)?;
        let entry = Path::Index(path, i);
        let k = input.value(key, start + offsets[0], &Path::Name(&entry, "key"))?;
        let v = input.value(value, start + offsets[1], &Path::Name(&entry, "value"))?;
        out.push((k, v));
    }
    Ok(())
}

/// Where a B-tree node's parts lie.
struct Node<'s> {
    key: &'s Shape,
    value: &'s Shape,
    key_size: usize,
    value_size: usize,
    keys: usize,
    values: usize,
    /// A leaf's count.
    leaf_len: usize,
    leaf_size: usize,
    /// An inner node's pointers.
    lesser: usize,
    greater: usize,
    inner_size: usize,
    align: usize,
}

impl<'s> Node<'s> {
    fn of(key: &'s Shape, value: &'s Shape, k: Layout, v: Layout) -> Result<Node<'s>, String> {
        let big = |n: Option<usize>| n.ok_or_else(|| "a B-tree node too large".to_owned());
        let keys = 1usize.next_multiple_of(k.align);
        let values = big((k.size.checked_mul(NODE_ENTRIES))
            .and_then(|n| n.checked_add(keys))
            .and_then(|n| n.checked_next_multiple_of(v.align)))?;
        let align = k.align.max(v.align);
        let node_size = big(v
            .size
            .checked_mul(NODE_ENTRIES)
            .and_then(|n| n.checked_add(values))
            .and_then(|n| n.checked_next_multiple_of(align)))?;
        let leaf_len = big(node_size.checked_next_multiple_of(4))?;
        let leaf_size = big((leaf_len + 4).checked_next_multiple_of(align.max(4)))?;
        let lesser = leaf_len;
        let greater = lesser + 4 * NODE_ENTRIES;
        let inner_size = big((greater + 4).checked_next_multiple_of(align.max(4)))?;
        Ok(Node {
            key,
            value,
            key_size: k.size,
            value_size: v.size,
            keys,
            values,
            leaf_len,
            leaf_size,
            lesser,
            greater,
            inner_size,
            align: align.max(4),
        })
    }
}

fn btree(
    input: &mut Input<'_>,
    n: &Node<'_>,
    at: usize,
    depth: usize,
    path: &Path<'_>,
    out: &mut Vec<(Value, Value)>,
) -> Res<()> {
    if depth > BTREE_DEPTH_MAX {
        return fail(path, "a B-tree deeper than 16 levels (its pointers loop)");
    }
    input.spend(16, path)?;
    let kind = input.take(at, 1, 1, path)?[0];
    let entry = |input: &mut Input<'_>, i: usize, out: &mut Vec<(Value, Value)>| -> Res<()> {
        let p = Path::Index(path, out.len());
        let k = input.value(n.key, at + n.keys + i * n.key_size, &p)?;
        let v = input.value(n.value, at + n.values + i * n.value_size, &p)?;
        out.push((k, v));
        Ok(())
    };
    match kind {
        0 => {
            input.take(at, n.leaf_size, n.align, path)?;
            let len = input.u32_at(at + n.leaf_len, path)? as usize;
            if len > NODE_ENTRIES {
                return fail(path, format!("a B-tree leaf of {len} entries"));
            }
            for i in 0..len {
                entry(input, i, out)?;
            }
        }
        1 => {
            input.take(at, n.inner_size, n.align, path)?;
            for i in 0..NODE_ENTRIES {
                let ptr = at + n.lesser + 4 * i;
                if input.u32_at(ptr, path)? as i32 != INVALID {
                    let child = input.target(ptr, path)?;
                    btree(input, n, child, depth + 1, path, out)?;
                }
                entry(input, i, out)?;
            }
            let ptr = at + n.greater;
            if input.u32_at(ptr, path)? as i32 != INVALID {
                let child = input.target(ptr, path)?;
                btree(input, n, child, depth + 1, path, out)?;
            }
        }
        other => return fail(path, format!("a B-tree node of kind {other}")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use super::super::shape::{Form, Shape};
    use super::super::value::decode;

    fn archive<T>(value: &T) -> Vec<u8>
    where
        T: for<'a> rkyv::Serialize<
                rkyv::api::high::HighSerializer<
                    rkyv::util::AlignedVec,
                    rkyv::ser::allocator::ArenaHandle<'a>,
                    rkyv::rancor::Error,
                >,
            >,
    {
        rkyv::to_bytes::<rkyv::rancor::Error>(value)
            .unwrap()
            .to_vec()
    }

    fn shape(text: &str) -> Shape {
        Shape::parse(text.as_bytes()).unwrap()
    }

    fn set_u32(bytes: &mut [u8], at: usize, v: u32) {
        bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }

    #[test]
    fn a_b_tree_whose_count_lies_is_refused() {
        let map: BTreeMap<u32, u32> = (0..40).map(|i| (i, i)).collect();
        let mut bytes = archive(&map);
        let s = shape("btree_map<u32,u32>");
        assert!(decode(&s, Form::Region, &bytes).is_ok());
        let root = bytes.len() - 8;
        set_u32(&mut bytes, root + 4, 39);
        let e = decode(&s, Form::Region, &bytes).unwrap_err();
        assert!(e.reason.contains("40"), "{e}");
    }

    #[test]
    fn a_hash_table_whose_count_lies_is_refused() {
        let map: HashMap<u32, u32> = (0..40).map(|i| (i, i)).collect();
        let mut bytes = archive(&map);
        let s = shape("hash_map<u32,u32>");
        assert!(decode(&s, Form::Region, &bytes).is_ok());
        let root = bytes.len() - 12;
        let cap = u32::from_le_bytes(bytes[root + 8..root + 12].try_into().unwrap());
        // One entry fewer than the full buckets.
        set_u32(&mut bytes, root + 4, 39);
        assert!(decode(&s, Form::Region, &bytes).is_err());
        // Every bucket full, as many entries as buckets: rkyv never
        // writes a table without an empty bucket.
        let controls = (root as i64
            + i64::from(i32::from_le_bytes(
                bytes[root..root + 4].try_into().unwrap(),
            ))) as usize;
        bytes[controls..controls + cap as usize].fill(0);
        set_u32(&mut bytes, root + 4, cap);
        let e = decode(&s, Form::Region, &bytes).unwrap_err();
        assert!(e.reason.contains("buckets"), "{e}");
    }

    #[test]
    fn a_b_tree_node_that_points_at_itself_ends_in_an_error() {
        let map: BTreeMap<u32, u32> = (0..40).map(|i| (i, i)).collect();
        let mut bytes = archive(&map);
        let s = shape("btree_map<u32,u32>");
        let root = bytes.len() - 8;
        let target = (root as i64
            + i64::from(i32::from_le_bytes(
                bytes[root..root + 4].try_into().unwrap(),
            ))) as usize;
        assert_eq!(bytes[target], 1, "the root is an inner node");
        // Its greater pointer (the last word of the inner node: 1 + 5 keys +
        // 5 values, then 5 lesser pointers) points at the node itself.
        let greater = target + 44 + 20;
        set_u32(
            &mut bytes,
            greater,
            (target as i64 - greater as i64) as i32 as u32,
        );
        let e = decode(&s, Form::Region, &bytes).unwrap_err();
        assert!(e.reason.contains("deeper"), "{e}");
    }
}

#[cfg(test)]
mod hostile {
    use std::collections::HashMap;

    use super::super::shape::{Form, Shape};
    use super::super::value::decode;

    /// Many map headers that all point at one large, nearly empty table:
    /// each one's control bytes are counted, so the work stays within the
    /// budget instead of growing with the product of the two.
    #[test]
    #[cfg_attr(
        miri,
        ignore = "reaching the budget takes millions of steps, hours under Miri"
    )]
    fn many_maps_over_one_large_table_run_out_of_budget() {
        let n = 64 * 1024;
        let cap = (n / 4) as u32;
        // The buckets (one `u8` key each), then the control bytes, all
        // empty but the first: entry 0, just before them.
        let controls = cap as usize;
        let mut bytes = vec![0u8; controls];
        bytes.extend(std::iter::repeat_n(
            0xffu8,
            controls.next_multiple_of(16) + 15,
        ));
        bytes[controls] = 0;
        let headers = n / 24;
        while !bytes.len().is_multiple_of(4) {
            bytes.push(0);
        }
        let first = bytes.len();
        for h in 0..headers {
            let at = first + 12 * h;
            let off = controls as i64 - at as i64;
            bytes.extend_from_slice(&(off as i32).to_le_bytes());
            bytes.extend_from_slice(&1u32.to_le_bytes());
            bytes.extend_from_slice(&cap.to_le_bytes());
        }
        while !bytes.len().is_multiple_of(4) {
            bytes.push(0);
        }
        let root = bytes.len();
        bytes.extend_from_slice(&((first as i64 - root as i64) as i32).to_le_bytes());
        bytes.extend_from_slice(&(headers as u32).to_le_bytes());
        let shape = Shape::parse(b"vec<hash_set<u8>>").unwrap();
        match decode(&shape, Form::Region, &bytes) {
            Err(e) => assert!(e.reason.contains("budget"), "{e}"),
            Ok(_) => panic!("{headers} maps over one table decoded within the budget"),
        }
    }

    #[test]
    fn a_key_twice_is_refused() {
        let map: HashMap<u32, u32> = HashMap::from([(1, 10), (2, 20)]);
        let mut bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&map)
            .unwrap()
            .to_vec();
        let shape = Shape::parse(b"hash_map<u32,u32>").unwrap();
        assert!(decode(&shape, Form::Region, &bytes).is_ok());
        // Write the key 2 over the key 1, wherever its entry lies.
        let at = bytes
            .windows(8)
            .position(|w| w == [1, 0, 0, 0, 10, 0, 0, 0])
            .unwrap();
        bytes[at] = 2;
        let e = decode(&shape, Form::Region, &bytes).unwrap_err();
        assert!(e.reason.contains("twice"), "{e}");
    }
}
