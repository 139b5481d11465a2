//! What `cairn produce` reads: records separated by a delimiter byte (newline by default),
//! each a value, a `KEY<SEP>VALUE` pair or a JSON object, their bytes given as text, base64 or
//! hex. Binary safe: the input is never required to be UTF-8 except in JSON mode.

use base64::Engine;
use bytes::Bytes;
use cairn_client::Header;
use serde_json::Value;

/// How each input record is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    /// The whole record is the value (with -K: key SEP value).
    Value,
    /// A JSON object: {"key": .., "value": .., "headers": {"k": "v"}, "partition": N}.
    Json,
}

/// How keys, values and header values are encoded in the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Encoding {
    /// As they are (bytes).
    Raw,
    Base64,
    Hex,
}

/// One record read from the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    pub key: Option<Bytes>,
    pub value: Bytes,
    pub headers: Vec<Header>,
    pub partition: Option<u32>,
}

/// Parses a delimiter given on the command line: one byte, or an escape (`\n`, `\t`, `\0`).
pub fn parse_delimiter(s: &str) -> anyhow::Result<u8> {
    match s {
        "\\n" => Ok(b'\n'),
        "\\t" => Ok(b'\t'),
        "\\0" => Ok(0),
        s if s.len() == 1 => Ok(s.as_bytes()[0]),
        _ => anyhow::bail!("delimiter {s:?}: expected one byte or \\n, \\t, \\0"),
    }
}

pub fn decode(raw: &[u8], enc: Encoding, what: &str) -> anyhow::Result<Bytes> {
    match enc {
        Encoding::Raw => Ok(Bytes::copy_from_slice(raw)),
        Encoding::Base64 => base64::engine::general_purpose::STANDARD
            .decode(trim(raw))
            .map(Bytes::from)
            .map_err(|e| anyhow::anyhow!("{what} is not valid base64: {e}")),
        Encoding::Hex => hex(trim(raw)).map(Bytes::from).map_err(|e| anyhow::anyhow!("{what} is not valid hex: {e}")),
    }
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !c.is_ascii_whitespace()).map_or(start, |e| e + 1);
    &b[start..end]
}

fn hex(b: &[u8]) -> Result<Vec<u8>, String> {
    if b.len() % 2 != 0 {
        return Err(format!("{} digits, an odd count", b.len()));
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(format!("{:?} is not a hex digit", c as char)),
    };
    b.chunks(2).map(|p| Ok(digit(p[0])? << 4 | digit(p[1])?)).collect()
}

/// Turns one input record (delimiter removed) into what is sent.
pub fn parse_record(raw: &[u8], format: InputFormat, key_sep: Option<u8>, enc: Encoding) -> anyhow::Result<Input> {
    match format {
        InputFormat::Value => {
            let (key, value) = match key_sep {
                Some(sep) => {
                    let i = raw.iter().position(|b| *b == sep).ok_or_else(|| {
                        anyhow::anyhow!("no key separator {:?} in this record (expected KEY<SEP>VALUE)", sep as char)
                    })?;
                    (Some(decode(&raw[..i], enc, "the key")?), &raw[i + 1..])
                }
                None => (None, raw),
            };
            Ok(Input { key, value: decode(value, enc, "the value")?, headers: Vec::new(), partition: None })
        }
        InputFormat::Json => json_record(raw, enc),
    }
}

fn json_record(raw: &[u8], enc: Encoding) -> anyhow::Result<Input> {
    let v: Value = serde_json::from_slice(raw).map_err(|e| anyhow::anyhow!("not a JSON object: {e}"))?;
    let obj = v.as_object().ok_or_else(|| anyhow::anyhow!("not a JSON object"))?;
    for k in obj.keys() {
        anyhow::ensure!(
            matches!(k.as_str(), "key" | "value" | "headers" | "partition"),
            "unknown field {k:?} (known: key, value, headers, partition)"
        );
    }
    let text = |field: &str| -> anyhow::Result<Option<Bytes>> {
        match obj.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => decode(s.as_bytes(), enc, field).map(Some),
            Some(_) => anyhow::bail!("{field} must be a string"),
        }
    };
    let key = text("key")?;
    let value = text("value")?.unwrap_or_default();
    let headers = match obj.get("headers") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(h)) => h
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => {
                    Ok(Header { key: k.clone(), value: decode(s.as_bytes(), enc, &format!("header {k}"))? })
                }
                _ => anyhow::bail!("header {k:?} must be a string"),
            })
            .collect::<anyhow::Result<Vec<_>>>()?,
        Some(_) => anyhow::bail!("headers must be an object of strings"),
    };
    let partition = match obj.get("partition") {
        None | Some(Value::Null) => None,
        Some(p) => Some(
            p.as_u64()
                .and_then(|p| u32::try_from(p).ok())
                .ok_or_else(|| anyhow::anyhow!("partition must be a partition number"))?,
        ),
    };
    Ok(Input { key, value, headers, partition })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_keys_and_encodings_decode_and_bad_ones_are_refused() {
        let r = parse_record(b"k1\tv\xff1", InputFormat::Value, Some(b'\t'), Encoding::Raw).expect("kv");
        assert_eq!(r.key.as_deref(), Some(&b"k1"[..]));
        assert_eq!(&r.value[..], b"v\xff1");
        let r = parse_record(b"aGk=", InputFormat::Value, None, Encoding::Base64).expect("b64");
        assert_eq!(&r.value[..], b"hi");
        let r = parse_record(b"00ff", InputFormat::Value, None, Encoding::Hex).expect("hex");
        assert_eq!(&r.value[..], [0u8, 0xff]);
        assert!(parse_record(b"no-sep", InputFormat::Value, Some(b'\t'), Encoding::Raw).is_err());
        assert!(parse_record(b"0f0", InputFormat::Value, None, Encoding::Hex).is_err());
        assert!(parse_record(b"zz", InputFormat::Value, None, Encoding::Hex).is_err());
        assert!(parse_record(b"!!", InputFormat::Value, None, Encoding::Base64).is_err());
    }

    #[test]
    fn json_records_carry_key_value_headers_and_partition() {
        let r = parse_record(
            br#"{"key":"k","value":"v","headers":{"trace":"t1"},"partition":2}"#,
            InputFormat::Json,
            None,
            Encoding::Raw,
        )
        .expect("json");
        assert_eq!(r.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(&r.value[..], b"v");
        assert_eq!(r.headers.len(), 1);
        assert_eq!(r.partition, Some(2));
        for bad in [&br#"{"valu":"x"}"#[..], b"[1]", b"{", br#"{"partition":-1}"#, br#"{"headers":{"a":1}}"#] {
            assert!(
                parse_record(bad, InputFormat::Json, None, Encoding::Raw).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn delimiters_are_one_byte_or_an_escape() {
        assert_eq!(parse_delimiter("\\0").ok(), Some(0));
        assert_eq!(parse_delimiter(",").ok(), Some(b','));
        assert!(parse_delimiter("ab").is_err());
    }
}
