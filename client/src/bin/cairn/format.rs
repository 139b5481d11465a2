//! Where to start reading (`--offset`, `--until`) and kcat-style record formats (`--format`).

use cairn_client::FetchedRecord;

/// Where `consume` starts in each partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    Earliest,
    Latest,
    At(u64),
    /// The last N records (from `latest - N`, not before the log start).
    Last(u64),
    /// The first record at or after this time (ms since the epoch).
    Time(i64),
}

/// `earliest`, `latest`, `N`, `-N` or `@TIME`.
pub fn parse_start(s: &str) -> anyhow::Result<Start> {
    match s {
        "earliest" | "beginning" => return Ok(Start::Earliest),
        "latest" | "end" => return Ok(Start::Latest),
        _ => {}
    }
    if let Some(t) = s.strip_prefix('@') {
        return parse_time(t).map(Start::Time);
    }
    if let Some(n) = s.strip_prefix('-') {
        return match n.parse::<u64>() {
            Ok(n) if n > 0 => Ok(Start::Last(n)),
            _ => anyhow::bail!("--offset {s:?}: -N needs a positive count of records (e.g. -10 for the last ten)"),
        };
    }
    s.parse().map(Start::At).map_err(|_| {
        anyhow::anyhow!(
            "--offset {s:?}: expected earliest, latest, an offset, -N (the last N records) or @TIME (ms since the epoch or RFC 3339)"
        )
    })
}

/// Milliseconds since the epoch, or an RFC 3339 time (`2026-12-03T14:00:00Z`,
/// `2026-12-03T15:00:00.250+01:00`).
pub fn parse_time(s: &str) -> anyhow::Result<i64> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().map_err(|_| anyhow::anyhow!("time {s:?} is out of range"));
    }
    chrono::DateTime::parse_from_rfc3339(s).map(|t| t.timestamp_millis()).map_err(|e| {
        anyhow::anyhow!(
            "time {s:?}: {e}; expected milliseconds since the epoch or an RFC 3339 time such as 2026-12-03T14:00:00Z"
        )
    })
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Lit(Vec<u8>),
    Topic,
    Partition,
    Offset,
    Key,
    Value,
    Timestamp,
    Headers,
    KeyLen,
    ValueLen,
}

/// A record format with kcat's placeholders: `%t` topic, `%p` partition, `%o` offset, `%k` key,
/// `%s` value, `%T` timestamp (ms), `%h` headers (`k=v,k=v`), `%K` key length, `%S` value
/// length, `%%` a percent sign; escapes `\n`, `\t`, `\r`, `\0`, `\\`. Keys and values are written
/// as their bytes (binary safe).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Format(Vec<Piece>);

pub const PLACEHOLDERS: &str = "%t topic, %p partition, %o offset, %k key, %s value, %T timestamp (ms), %h headers, %K key length, %S value length, %% percent; escapes \\n \\t \\r \\0 \\\\";

impl Format {
    pub fn parse(s: &str) -> anyhow::Result<Format> {
        let mut pieces = Vec::new();
        let mut lit = Vec::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            let piece = match c {
                '%' => match chars.next() {
                    Some('t') => Piece::Topic,
                    Some('p') => Piece::Partition,
                    Some('o') => Piece::Offset,
                    Some('k') => Piece::Key,
                    Some('s') => Piece::Value,
                    Some('T') => Piece::Timestamp,
                    Some('h') => Piece::Headers,
                    Some('K') => Piece::KeyLen,
                    Some('S') => Piece::ValueLen,
                    Some('%') => {
                        lit.push(b'%');
                        continue;
                    }
                    Some(x) => anyhow::bail!("--format: unknown placeholder %{x} (known: {PLACEHOLDERS})"),
                    None => anyhow::bail!("--format ends with a lone %"),
                },
                '\\' => {
                    let b = match chars.next() {
                        Some('n') => b'\n',
                        Some('t') => b'\t',
                        Some('r') => b'\r',
                        Some('0') => 0,
                        Some('\\') => b'\\',
                        Some(x) => anyhow::bail!("--format: unknown escape \\{x} (known: \\n \\t \\r \\0 \\\\)"),
                        None => anyhow::bail!("--format ends with a lone \\"),
                    };
                    lit.push(b);
                    continue;
                }
                c => {
                    let mut buf = [0u8; 4];
                    lit.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    continue;
                }
            };
            if !lit.is_empty() {
                pieces.push(Piece::Lit(std::mem::take(&mut lit)));
            }
            pieces.push(piece);
        }
        if !lit.is_empty() {
            pieces.push(Piece::Lit(lit));
        }
        Ok(Format(pieces))
    }

    /// The value's bytes and nothing else (`--raw`).
    pub fn raw() -> Format {
        Format(vec![Piece::Value])
    }

    pub fn render(&self, topic: &str, partition: u32, r: &FetchedRecord, out: &mut Vec<u8>) {
        for p in &self.0 {
            match p {
                Piece::Lit(b) => out.extend_from_slice(b),
                Piece::Topic => out.extend_from_slice(topic.as_bytes()),
                Piece::Partition => out.extend_from_slice(partition.to_string().as_bytes()),
                Piece::Offset => out.extend_from_slice(r.offset.to_string().as_bytes()),
                Piece::Key => out.extend_from_slice(&r.key),
                Piece::Value => out.extend_from_slice(&r.value),
                Piece::Timestamp => out.extend_from_slice(r.timestamp_ms.to_string().as_bytes()),
                Piece::Headers => {
                    for (i, h) in r.headers.iter().enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        out.extend_from_slice(h.key.as_bytes());
                        out.push(b'=');
                        out.extend_from_slice(&h.value);
                    }
                }
                Piece::KeyLen => out.extend_from_slice(r.key.len().to_string().as_bytes()),
                Piece::ValueLen => out.extend_from_slice(r.value.len().to_string().as_bytes()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_and_times_parse_and_bad_ones_say_what_is_expected() {
        assert_eq!(parse_start("earliest").ok(), Some(Start::Earliest));
        assert_eq!(parse_start("latest").ok(), Some(Start::Latest));
        assert_eq!(parse_start("42").ok(), Some(Start::At(42)));
        assert_eq!(parse_start("-5").ok(), Some(Start::Last(5)));
        assert_eq!(parse_start("@1700000000000").ok(), Some(Start::Time(1_700_000_000_000)));
        assert_eq!(parse_start("@2026-12-03T14:00:00Z").ok(), Some(Start::Time(1_796_306_400_000)));
        assert_eq!(parse_start("@2026-12-03T15:00:00.250+01:00").ok(), Some(Start::Time(1_796_306_400_250)));
        for bad in ["-0", "-x", "soon", "@yesterday", "@2026-13-01T00:00:00Z", "@"] {
            let e = parse_start(bad).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(!e.is_empty(), "{bad} was accepted");
            assert!(!e.contains("Some(") && !e.contains("::"), "{e}");
        }
    }

    #[test]
    fn a_format_renders_every_placeholder_and_escape_and_refuses_unknown_ones() {
        let r = FetchedRecord {
            offset: 7,
            key: b"k1".to_vec().into(),
            value: vec![0xff, 0x00, b'v'].into(),
            headers: vec![cairn_client::Header { key: "h".into(), value: b"x".to_vec().into() }],
            timestamp_ms: 99,
        };
        let mut out = Vec::new();
        Format::parse("%t|%p|%o|%k|%s|%T|%h|%K|%S|%%\\t\\n").expect("format").render("t", 3, &r, &mut out);
        let mut want = b"t|3|7|k1|".to_vec();
        want.extend_from_slice(&[0xff, 0x00, b'v']);
        want.extend_from_slice(b"|99|h=x|2|3|%\t\n");
        assert_eq!(out, want);
        for bad in ["%x", "%", "\\q", "\\"] {
            assert!(Format::parse(bad).is_err(), "{bad} was accepted");
        }
    }
}
