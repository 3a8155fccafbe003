//! One call of the admission script: its keys and arguments, written straight into one [`Cmd`] (one
//! buffer for all of them, no text formatting of numbers), and its reply. The layout is described
//! with the script, in [`script`](super::script).

use std::collections::HashMap;

use redis::{Cmd, RedisWrite, Value};
use smallvec::SmallVec;

use crate::error::{Error, ErrorKind, Result};
use crate::state::{Admit, Admitted, Counter, FastHash, Lease, SLACK, Settlement};

/// The first counter's index in `KEYS` (1-based, as Lua counts).
const FIRST_COUNTER: u32 = 6;

/// Up to this many distinct counters, a counter is looked up by scanning them; beyond, by a hash
/// map (a sync of shared learning sends thousands).
const SCAN: usize = 16;

/// The names of a namespace's keys, as bytes: the fixed keys, and the prefixes of the others.
pub(super) struct Names {
    leases: Box<[u8]>,
    lease: Box<[u8]>,
    seq: Box<[u8]>,
    swept: Box<[u8]>,
    counter: Box<[u8]>,
    flag: Box<[u8]>,
    sticky: Box<[u8]>,
}

impl Names {
    /// The names under `prefix` (`{ns}:`).
    pub(super) fn new(prefix: &str) -> Self {
        let name = |suffix: &str| format!("{prefix}{suffix}").into_bytes().into_boxed_slice();
        Self {
            leases: name("leases"),
            lease: name("lease"),
            seq: name("lease_seq"),
            swept: name("leases:swept"),
            counter: name("c:"),
            flag: name("f:"),
            sticky: name("s:"),
        }
    }

    /// Appends the key of `counter` to `cmd` as one argument.
    pub(super) fn write_counter(&self, cmd: &mut Cmd, scratch: &mut Vec<u8>, counter: &Counter) {
        write_joined(cmd, scratch, &self.counter, counter.key().as_bytes());
    }
}

/// Appends `prefix` followed by `name` to `cmd` as one argument.
fn write_joined(cmd: &mut Cmd, scratch: &mut Vec<u8>, prefix: &[u8], name: &[u8]) {
    scratch.clear();
    scratch.extend_from_slice(prefix);
    scratch.extend_from_slice(name);
    cmd.write_arg(scratch);
}

/// The distinct counters of a call, in the order they first appear.
struct Distinct<'a> {
    list: SmallVec<[&'a Counter; 8]>,
    /// Built once the list is too long to scan.
    index: Option<HashMap<&'a Counter, u32, FastHash>>,
}

impl<'a> Distinct<'a> {
    fn new() -> Self {
        Self { list: SmallVec::new(), index: None }
    }

    /// The place of `counter` in the list, adding it if it is new.
    fn slot(&mut self, counter: &'a Counter) -> u32 {
        let found = match &self.index {
            Some(index) => index.get(counter).copied(),
            None => self.list.iter().position(|c| *c == counter).map(|i| i as u32),
        };
        if let Some(i) = found {
            return i;
        }
        let i = self.list.len() as u32;
        self.list.push(counter);
        match &mut self.index {
            Some(index) => {
                index.insert(counter, i);
            }
            None if self.list.len() > SCAN => {
                self.index = Some(self.list.iter().enumerate().map(|(j, c)| (*c, j as u32)).collect());
            }
            None => {}
        }
        i
    }
}

/// What the reply of a call is read against.
pub(super) struct Shape {
    /// For each counter of the admission, its place among the call's distinct counters.
    slots: SmallVec<[u32; 8]>,
    /// The admission's distinct counters: the values the script returns.
    distinct: usize,
}

/// Writes little-endian doubles into a buffer sized for them.
struct Doubles<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl Doubles<'_> {
    fn put(&mut self, v: f64) {
        self.buf[self.at..self.at + 8].copy_from_slice(&v.to_le_bytes());
        self.at += 8;
    }
}

/// Appends a little-endian `u32` (`I4`).
fn int(buf: &mut Vec<u8>, v: u32) {
    buf.extend_from_slice(&v.to_le_bytes());
}

/// Appends a little-endian double (`d`).
fn num(buf: &mut Vec<u8>, v: f64) {
    buf.extend_from_slice(&v.to_le_bytes());
}

/// Milliseconds as the script takes them: whole, rounded up so that a positive duration stays
/// positive (exact as a double up to 2^53 ms).
fn millis(d: std::time::Duration) -> f64 {
    super::millis(d) as f64
}

/// The script call for `admit` with `settle` (for a plain settlement, an empty admission), and
/// what its reply is read against.
pub(super) fn encode(names: &Names, sha: &str, admit: &Admit, settle: &[Settlement]) -> (Cmd, Shape) {
    let mut counters = Distinct::new();
    let slots: SmallVec<[u32; 8]> = admit.counters.iter().map(|c| counters.slot(c)).collect();
    let distinct = counters.list.len();
    let charges = |s: &Settlement| s.lease.charges.len().min(s.actual.len());
    let settled: SmallVec<[u32; 8]> =
        settle.iter().flat_map(|s| s.lease.charges[..charges(s)].iter()).map(|(c, _)| counters.slot(c)).collect();
    let nk = counters.list.len();
    let sticky = admit.sticky.is_some();

    // One pass over the choices for what the keys and the header need and for the sizes, so that
    // the command's buffer is allocated once.
    let mut bytes = 64 + names.leases.len() + names.lease.len() + names.seq.len() + names.swept.len();
    let mut blob = 46 + 8 * nk + 12 * admit.flags.len() + settle.iter().map(|s| 4 + 20 * charges(s)).sum::<usize>();
    let (mut choice_flags, mut soft) = (0, false);
    for choice in &admit.choices {
        let terms: usize = choice.checks.iter().map(|k| k.terms.len()).sum();
        blob += 8 + 8 * (3 + 2 * choice.charges.len() + 3 * choice.checks.len() + 3 * terms);
        bytes += if sticky { choice.label.len() } else { 0 };
        if let Some(flag) = &choice.flag {
            choice_flags += 1;
            bytes += names.flag.len() + flag.len();
        }
        soft |= choice.checks.iter().any(|k| k.soft);
    }
    bytes += admit.sticky.as_ref().map_or(names.seq.len(), |s| names.sticky.len() + s.key.len());
    bytes += counters.list.iter().map(|c| names.counter.len() + c.key().len()).sum::<usize>();
    bytes += admit.flags.iter().map(|f| names.flag.len() + f.name.len()).sum::<usize>();
    bytes += blob + 20 * settle.len();
    let nkeys = 5 + nk + choice_flags + admit.flags.len();
    let nargs = 1 + settle.len() + if sticky { admit.choices.len() } else { 0 };
    let mut cmd = Cmd::with_capacity(3 + nkeys + nargs, bytes);
    let mut scratch = Vec::with_capacity(blob.max(256));

    cmd.arg("EVALSHA").arg(sha).arg(nkeys);
    for fixed in [&names.leases, &names.lease, &names.seq, &names.swept] {
        cmd.write_arg(fixed);
    }
    match &admit.sticky {
        Some(s) => write_joined(&mut cmd, &mut scratch, &names.sticky, s.key.as_bytes()),
        None => cmd.write_arg(&names.seq),
    }
    for c in &counters.list {
        names.write_counter(&mut cmd, &mut scratch, c);
    }
    let first_flag = FIRST_COUNTER + nk as u32;
    let mut next_flag = first_flag;
    let flags = admit.choices.iter().filter_map(|c| c.flag.as_deref()).chain(admit.flags.iter().map(|f| &*f.name));
    for name in flags {
        write_joined(&mut cmd, &mut scratch, &names.flag, name.as_bytes());
    }

    // The header.
    scratch.clear();
    int(&mut scratch, nk as u32);
    int(&mut scratch, distinct as u32);
    int(&mut scratch, admit.choices.len() as u32);
    int(&mut scratch, settle.len() as u32);
    int(&mut scratch, admit.flags.len() as u32);
    num(&mut scratch, admit.lease_ttl.as_secs_f64() * 1000.0);
    num(&mut scratch, admit.sticky.as_ref().map_or(-1.0, |s| millis(s.ttl)));
    scratch.push(u8::from(soft));
    // Idle-expiring counters: their life negative, and a mark when the admission lists one.
    let idle = |c: &Counter| c.expires_idle() && !c.ttl().is_zero();
    scratch.push(u8::from(counters.list[..distinct].iter().any(|c| idle(c))));
    // The lease id the caller names (0: the store numbers it); `validate` keeps it below 2^53,
    // exact as a double.
    num(&mut scratch, admit.lease_id.map_or(0.0, |id| id as f64));
    for c in &counters.list {
        num(&mut scratch, if idle(c) { -millis(c.ttl()) } else { millis(c.ttl()) });
    }
    // Where each choice's record starts, filled in as the records are written.
    let offsets = scratch.len();
    scratch.resize(offsets + 4 * admit.choices.len(), 0);
    for (i, flag) in admit.flags.iter().enumerate() {
        int(&mut scratch, first_flag + (choice_flags + i) as u32);
        num(&mut scratch, millis(flag.ttl));
    }
    let mut settled = settled.iter();
    for s in settle {
        int(&mut scratch, charges(s) as u32);
        for ((_, reserved), actual) in s.lease.charges.iter().zip(&s.actual) {
            int(&mut scratch, FIRST_COUNTER + settled.next().copied().unwrap_or_default());
            num(&mut scratch, *reserved);
            num(&mut scratch, *actual);
        }
    }

    // One record per choice: its number of values, then the values, all doubles.
    let keys: SmallVec<[f64; 8]> = slots.iter().map(|&s| f64::from(FIRST_COUNTER + s)).collect();
    for (c, choice) in admit.choices.iter().enumerate() {
        let terms: usize = choice.checks.iter().map(|k| k.terms.len()).sum();
        let n = 3 + 2 * choice.charges.len() + 3 * choice.checks.len() + 3 * terms;
        let start = scratch.len();
        // 1-based, as Lua counts.
        scratch[offsets + 4 * c..offsets + 4 * c + 4].copy_from_slice(&(start as u32 + 1).to_le_bytes());
        int(&mut scratch, n as u32);
        scratch.resize(start + 4 + 8 * n, 0);
        let mut out = Doubles { buf: &mut scratch[start + 4..], at: 0 };
        let flag = match choice.flag {
            Some(_) => {
                next_flag += 1;
                next_flag - 1
            }
            None => 0,
        };
        out.put(f64::from(flag));
        out.put(choice.charges.len() as f64);
        for &(i, amount) in &choice.charges {
            out.put(keys[i as usize]);
            out.put(amount);
        }
        out.put(choice.checks.len() as f64);
        for check in &choice.checks {
            // As `state::holds` computes them, so that both stores decide alike.
            out.put(check.limit * (1.0 + SLACK) + SLACK);
            out.put(if check.soft { 1.0 } else { 0.0 });
            out.put(check.terms.len() as f64);
            for &(i, weight) in &check.terms {
                let charge: f64 = choice.charges.iter().filter(|(j, _)| *j == i).map(|(_, a)| a).sum();
                out.put(keys[i as usize]);
                out.put(weight);
                out.put(charge);
            }
        }
        debug_assert_eq!(out.at, 8 * n, "a record holds the values it counts");
    }
    cmd.write_arg(&scratch);

    for s in settle {
        // Charges that were never reserved have no lease; a batch applied once is `u` and its id.
        match s.lease.id {
            0 => cmd.arg(""),
            id if id & crate::state::ONCE != 0 => cmd.arg(format!("u{}", id & !crate::state::ONCE)),
            id => cmd.arg(id),
        };
    }
    if sticky {
        for choice in &admit.choices {
            cmd.arg(&*choice.label);
        }
    }
    (cmd, Shape { slots, distinct })
}

/// Reads the script's reply to an admission encoded as `shape`.
pub(super) fn admitted(reply: Value, admit: &Admit, shape: &Shape) -> Result<Admitted> {
    let Value::BulkString(blob) = reply else {
        return Err(malformed());
    };
    let mut doubles = blob.chunks_exact(8).map(|b| {
        let mut bytes = [0; 8];
        bytes.copy_from_slice(b);
        f64::from_le_bytes(bytes)
    });
    let mut next = || doubles.next().ok_or_else(malformed);
    let (choice, id, hit, count) = (next()?, next()?, next()?, whole(next()?)?);
    let blocked = (0..count)
        .map(|_| {
            let (i, ms) = (whole(next()?)?, whole(next()?)?);
            let i = usize::try_from(i).ok().filter(|&i| i < admit.choices.len()).ok_or_else(malformed)?;
            Ok((i, std::time::Duration::from_millis(ms)))
        })
        .collect::<Result<Vec<_>>>()?;
    let distinct = (0..shape.distinct).map(|_| next()).collect::<Result<SmallVec<[f64; 8]>>>()?;
    if blob.len() != 8 * (4 + 2 * blocked.len() + shape.distinct) {
        return Err(malformed());
    }
    let values = shape.slots.iter().map(|&s| distinct[s as usize]).collect();
    if choice == -1.0 {
        return Ok(Admitted { choice: None, lease: None, values, sticky_hit: false, blocked });
    }
    let i = usize::try_from(whole(choice)?).map_err(|_| malformed())?;
    let chosen = admit.choices.get(i).ok_or_else(malformed)?;
    let id = whole(id).ok().filter(|&id| id > 0).ok_or_else(malformed)?;
    let charges = chosen.charges.iter().map(|&(c, amount)| (admit.counters[c as usize].clone(), amount)).collect();
    let lease = Lease { id, charges };
    Ok(Admitted { choice: Some(i), lease: Some(lease), values, sticky_hit: hit == 1.0, blocked })
}

/// A whole, non-negative number the script sent as a double (exact up to 2^53).
fn whole(x: f64) -> Result<u64> {
    if (0.0..=9_007_199_254_740_992.0).contains(&x) && x.fract() == 0.0 { Ok(x as u64) } else { Err(malformed()) }
}

pub(super) fn malformed() -> Error {
    Error::new(ErrorKind::Store, "redis store returned a malformed reply")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use smallvec::smallvec;

    use super::*;
    use crate::state::{Check, Choice, Flag, Sticky};

    /// A value `struct.unpack` returns.
    #[derive(Debug, PartialEq)]
    enum V {
        I(u32),
        B(u8),
        D(f64),
    }

    /// `struct.unpack` for the options the encoding uses (`<`, `I4`, `B`, `d`), from `data`.
    fn unpack(format: &[u8], data: &[u8]) -> (Vec<V>, usize) {
        let mut out = Vec::new();
        let mut at = 0;
        let mut f = format.iter().copied().peekable();
        while let Some(op) = f.next() {
            match op {
                b'<' => {}
                b'I' => {
                    assert_eq!(f.next(), Some(b'4'));
                    out.push(V::I(u32::from_le_bytes(data[at..at + 4].try_into().unwrap())));
                    at += 4;
                }
                b'B' => {
                    out.push(V::B(data[at]));
                    at += 1;
                }
                b'd' => {
                    out.push(V::D(f64::from_le_bytes(data[at..at + 8].try_into().unwrap())));
                    at += 8;
                }
                other => panic!("unexpected format option {}", other as char),
            }
        }
        (out, at)
    }

    /// A choice record as the script reads it: its number of values, then as many doubles.
    fn record(arg: &[u8]) -> Vec<f64> {
        let n = u32::from_le_bytes(arg[..4].try_into().unwrap()) as usize;
        let format = format!("<{}", "d".repeat(n));
        let (values, used) = unpack(format.as_bytes(), &arg[4..]);
        assert_eq!(4 + used, arg.len(), "the record has nothing after its values");
        values.into_iter().map(|v| if let V::D(x) = v { x } else { unreachable!() }).collect::<Vec<_>>()
    }

    fn args(cmd: &Cmd) -> Vec<Vec<u8>> {
        cmd.args_iter()
            .map(|a| match a {
                redis::Arg::Simple(b) => b.to_vec(),
                _ => panic!("only plain arguments"),
            })
            .collect()
    }

    #[test]
    fn the_encoding_decodes_to_what_was_written() {
        let day = Duration::from_secs(86_400);
        // An idle-expiring counter is written with its life negative.
        let (global, tenant) = (Counter::idle("budget:g", day), Counter::new("budget:t", Duration::ZERO));
        let other = Counter::new("budget:old", Duration::from_millis(1500));
        let check = |i: u32, limit: f64, soft: bool| Check { terms: smallvec![(i, 1.0)], limit, soft };
        let admit = Admit {
            // A duplicate counter: one key, and both indices read its value.
            counters: vec![global.clone(), tenant.clone(), Counter::new("budget:g", day)],
            choices: vec![
                Choice {
                    label: Arc::from("m0"),
                    charges: smallvec![(0, 0.1), (1, 0.1)],
                    checks: smallvec![check(0, 1e9, false), check(2, 5.0, true)],
                    flag: Some(Arc::from("circuit:m0")),
                },
                Choice {
                    label: Arc::from("m1"),
                    charges: smallvec![(1, 1.0 / 3.0)],
                    checks: smallvec![Check {
                        terms: smallvec![(1, 0.5), (0, 2.0)],
                        limit: f64::NEG_INFINITY,
                        soft: false
                    }],
                    flag: None,
                },
            ],
            lease_ttl: Duration::from_micros(2500),
            sticky: Some(Sticky { key: Arc::from("sticky:k"), ttl: Duration::from_secs(60) }),
            settle: Vec::new(),
            flags: vec![Flag { name: Arc::from("circuit:m1"), ttl: Duration::from_millis(300) }],
            lease_id: Some((1 << 52) + 7),
        };
        let settle = vec![
            Settlement {
                lease: Lease { id: 42, charges: smallvec![(global.clone(), 1e-300)] },
                actual: smallvec![1e300],
            },
            Settlement::unreserved([(other.clone(), 0.25), (tenant.clone(), 0.5)]),
        ];
        let names = Names::new("{ns}:");
        let (cmd, shape) = encode(&names, "0123", &admit, &settle);
        let args = args(&cmd);
        let text = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
        assert_eq!(text(&args[0]), "EVALSHA");
        assert_eq!(text(&args[1]), "0123");
        // 5 fixed, 3 distinct counters, 2 flags.
        assert_eq!(text(&args[2]), "10");
        let keys: Vec<String> = args[3..13].iter().map(|k| text(k)).collect();
        assert_eq!(
            keys,
            [
                "{ns}:leases",
                "{ns}:lease",
                "{ns}:lease_seq",
                "{ns}:leases:swept",
                "{ns}:s:sticky:k",
                "{ns}:c:budget:g",
                "{ns}:c:budget:t",
                "{ns}:c:budget:old",
                "{ns}:f:circuit:m0",
                "{ns}:f:circuit:m1",
            ]
        );
        assert_eq!(&shape.slots[..], &[0, 1, 0]);
        assert_eq!(shape.distinct, 2);

        let blob = &args[13];
        let (fixed, at) = unpack(b"<I4I4I4I4I4ddBBd", blob);
        use V::{B, D, I};
        let named = ((1u64 << 52) + 7) as f64;
        assert_eq!(fixed, [I(3), I(2), I(2), I(2), I(1), D(2.5), D(60_000.0), B(1), B(1), D(named)]);
        let (rest, used) = unpack(b"<dddI4I4I4dI4I4ddI4I4ddI4dd", &blob[at..]);
        let (I(first), I(second)) = (&rest[3], &rest[4]) else { panic!("offsets") };
        let (first, second) = (*first as usize - 1, *second as usize - 1);
        assert_eq!(first, at + used, "the records follow the settlements");
        assert_eq!(
            rest.into_iter().enumerate().filter(|(i, _)| !matches!(i, 3 | 4)).map(|(_, v)| v).collect::<Vec<_>>(),
            [
                D(-86_400_000.0),
                D(0.0),
                D(1500.0),
                I(10),
                D(300.0),
                I(1),
                I(6),
                D(1e-300),
                D(1e300),
                I(2),
                I(8),
                D(0.0),
                D(0.25),
                I(7),
                D(0.0),
                D(0.5)
            ]
        );

        let bound = |limit: f64| limit * (1.0 + SLACK) + SLACK;
        // Flag key, charges (counter key, amount), checks (bound, soft, terms (counter key, weight,
        // this choice's charge to it)).
        let one = [
            9.0,
            2.0,
            6.0,
            0.1,
            7.0,
            0.1,
            2.0,
            bound(1e9),
            0.0,
            1.0,
            6.0,
            1.0,
            0.1,
            bound(5.0),
            1.0,
            1.0,
            6.0,
            1.0,
            0.0,
        ];
        assert_eq!(record(&blob[first..second]), one);
        let two = [0.0, 1.0, 7.0, 1.0 / 3.0, 1.0, f64::NEG_INFINITY, 0.0, 2.0, 7.0, 0.5, 1.0 / 3.0, 6.0, 2.0, 0.0];
        assert_eq!(record(&blob[second..]), two);
        assert_eq!(text(&args[14]), "42");
        assert_eq!(text(&args[15]), "");
        assert_eq!(text(&args[16]), "m0");
        assert_eq!(text(&args[17]), "m1");
        assert_eq!(args.len(), 18);
    }

    #[test]
    fn many_counters_are_deduplicated_through_a_map() {
        let counters: Vec<Counter> = (0..100).map(|i| Counter::new(format!("c:{i}"), Duration::ZERO)).collect();
        let again = Counter::new("c:57", Duration::ZERO);
        let mut distinct = Distinct::new();
        for (i, c) in counters.iter().enumerate() {
            assert_eq!(distinct.slot(c), i as u32);
        }
        assert!(distinct.index.is_some());
        assert_eq!(distinct.slot(&again), 57);
        assert_eq!(distinct.list.len(), 100);
    }

    #[test]
    fn malformed_replies_are_errors() {
        let admit = Admit {
            counters: vec![Counter::new("c", Duration::ZERO), Counter::new("c", Duration::ZERO)],
            choices: vec![Choice {
                label: Arc::from("m"),
                charges: smallvec![(0, 1.0)],
                checks: smallvec![],
                flag: None,
            }],
            ..Admit::default()
        };
        let shape = Shape { slots: smallvec![0, 0], distinct: 1 };
        let reply = |doubles: &[f64]| Value::BulkString(doubles.iter().flat_map(|d| d.to_le_bytes()).collect());
        let ok = admitted(reply(&[0.0, 7.0, 1.0, 0.0, 1.5]), &admit, &shape).unwrap();
        assert_eq!((ok.choice, ok.lease.unwrap().id, ok.sticky_hit), (Some(0), 7, true));
        assert_eq!(ok.values, [1.5, 1.5], "both indices of the one counter read its value");
        let none = admitted(reply(&[-1.0, 0.0, 0.0, 1.0, 0.0, 250.0, 0.1]), &admit, &shape).unwrap();
        assert_eq!((none.choice, none.lease, none.values), (None, None, vec![0.1, 0.1]));
        assert_eq!(none.blocked, [(0, Duration::from_millis(250))]);
        for bad in [
            Value::Nil,
            Value::Array(vec![Value::Int(0)]),
            Value::BulkString(vec![0; 7]),
            reply(&[0.0, 7.0, 0.0, 0.0]),
            reply(&[0.0, 7.0, 0.0, 0.0, 1.5, 2.5]),
            reply(&[1.0, 7.0, 0.0, 0.0, 1.5]),
            reply(&[0.0, 0.0, 0.0, 0.0, 1.5]),
            reply(&[0.0, 7.5, 0.0, 0.0, 1.5]),
            reply(&[-2.0, 0.0, 0.0, 0.0, 1.5]),
            reply(&[0.0, 7.0, 0.0, 1.0, 1.5]),
            reply(&[0.0, 7.0, 0.0, 1.0, 3.0, 10.0, 1.5]),
            reply(&[0.0, 7.0, 0.0, 1.0, 0.0, -1.0, 1.5]),
            reply(&[0.0, 7.0, 0.0, f64::NAN, 1.5]),
        ] {
            assert_eq!(admitted(bad, &admit, &shape).unwrap_err().kind(), ErrorKind::Store);
        }
    }
}
