//! Target description XML (`qXfer:features:read`, `target.xml` and its includes): the register
//! list and its numbering.
//!
//! Numbering follows GDB: registers are numbered in document order across included files; a
//! `regnum` attribute sets the number, and the next register continues from it.
//!
//! Bounds: a stub chooses what to include, so the walk fetches at most [`MAX_XML_ANNEXES`]
//! documents, nested at most [`MAX_XML_DEPTH`] includes deep, of at most [`MAX_XML_BYTES`] in
//! all; register numbers must fit in 32 bits.

use super::RspError;

/// Most documents one target description may consist of (`target.xml` and every include
/// fetched, counting repeats). QEMU's riscv64 description has five.
pub const MAX_XML_ANNEXES: usize = 64;

/// Most levels of `xi:include` below `target.xml` (QEMU uses one).
pub const MAX_XML_DEPTH: usize = 4;

/// Most bytes all documents of one target description may have together (QEMU's riscv64
/// description has about 30 KiB).
pub const MAX_XML_BYTES: usize = 4 << 20;

/// One register of the target description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterDesc {
    pub name: String,
    pub bitsize: u32,
    pub regnum: u32,
}

/// The registers the server described, in document order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegisterMap {
    pub registers: Vec<RegisterDesc>,
}

impl RegisterMap {
    /// The register named `name`, if described.
    pub fn by_name(&self, name: &str) -> Option<&RegisterDesc> {
        self.registers.iter().find(|r| r.name == name)
    }

    /// The register numbered `regnum`, if described.
    pub fn by_number(&self, regnum: u32) -> Option<&RegisterDesc> {
        self.registers.iter().find(|r| r.regnum == regnum)
    }
}

/// An item of a feature document that matters for the register map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XmlItem {
    /// `<xi:include href="…"/>`: another annex to fetch and splice in here.
    Include(String),
    /// `<reg name=… bitsize=… [regnum=…]/>`.
    Reg {
        name: String,
        bitsize: u32,
        regnum: Option<u32>,
    },
}

/// Extracts includes and registers, in document order, from one feature document. Tolerant: tags
/// it does not know are skipped; a `reg` without a name or bitsize is skipped. A `regnum` that
/// is not a 32-bit number is an error (skipping it would misnumber the registers after it).
pub fn parse_items(xml: &str) -> Result<Vec<XmlItem>, RspError> {
    let mut items = Vec::new();
    let mut rest = xml;
    while let Some(open) = rest.find('<') {
        rest = &rest[open + 1..];
        if let Some(after) = rest.strip_prefix("!--") {
            rest = after.find("-->").map_or("", |end| &after[end + 3..]);
            continue;
        }
        let Some(close) = rest.find('>') else { break };
        let tag = &rest[..close];
        rest = &rest[close + 1..];
        let tag = tag.trim_end_matches('/').trim();
        let (name, attrs) = tag.split_once(char::is_whitespace).unwrap_or((tag, ""));
        match name {
            "xi:include" | "include" => {
                if let Some(href) = attr(attrs, "href") {
                    items.push(XmlItem::Include(href.to_owned()));
                }
            }
            "reg" => {
                let (Some(name), Some(bitsize)) = (
                    attr(attrs, "name"),
                    attr(attrs, "bitsize").and_then(|b| b.parse().ok()),
                ) else {
                    continue;
                };
                let regnum = match attr(attrs, "regnum") {
                    None => None,
                    Some(n) => Some(n.parse().map_err(|_| {
                        RspError::malformed(
                            "target description",
                            tag.as_bytes(),
                            "regnum is not a 32-bit register number",
                        )
                    })?),
                };
                items.push(XmlItem::Reg {
                    name: name.to_owned(),
                    bitsize,
                    regnum,
                });
            }
            _ => {}
        }
    }
    Ok(items)
}

/// Value of attribute `key` in the attribute text of a tag (quoted with `"` or `'`).
fn attr<'a>(attrs: &'a str, key: &str) -> Option<&'a str> {
    let mut rest = attrs;
    loop {
        let eq = rest.find('=')?;
        let k = rest[..eq].trim();
        let v = rest[eq + 1..].trim_start();
        let quote = v.chars().next()?;
        if quote != '"' && quote != '\'' {
            return None;
        }
        let end = v[1..].find(quote)?;
        if k == key {
            return Some(&v[1..1 + end]);
        }
        rest = &v[end + 2..];
    }
}

/// Appends the register `item` (if it is one) to `map`, numbering it; `next` is the number the
/// next unnumbered register gets (start at 0). Includes are not followed (the caller fetches and
/// recurses). Fails, adding nothing, if the register's number does not fit in 32 bits (it follows
/// one numbered 4294967295).
pub fn number_registers(
    item: &XmlItem,
    next: &mut u64,
    map: &mut RegisterMap,
) -> Result<(), RspError> {
    if let XmlItem::Reg {
        name,
        bitsize,
        regnum,
    } = item
    {
        let n = regnum.map_or(*next, u64::from);
        let regnum = u32::try_from(n).map_err(|_| {
            RspError::malformed(
                "target description",
                name.as_bytes(),
                "register number past 4294967295",
            )
        })?;
        map.registers.push(RegisterDesc {
            name: name.clone(),
            bitsize: *bitsize,
            regnum,
        });
        *next = n + 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const QEMU_TARGET: &str = r#"<?xml version="1.0"?><!DOCTYPE target SYSTEM "gdb-target.dtd">
<target><architecture>riscv:rv64</architecture><xi:include href="riscv-64bit-cpu.xml"/>
<!-- <xi:include href="commented-out.xml"/> -->
<xi:include href='riscv-64bit-csr.xml'/></target>"#;

    #[test]
    fn finds_includes_in_order_and_skips_comments() {
        assert_eq!(
            parse_items(QEMU_TARGET).unwrap(),
            vec![
                XmlItem::Include("riscv-64bit-cpu.xml".into()),
                XmlItem::Include("riscv-64bit-csr.xml".into()),
            ]
        );
    }

    #[test]
    fn numbers_registers_like_gdb() {
        let xml = r#"<feature name="org.gnu.gdb.riscv.cpu">
  <reg name="zero" bitsize="64" type="int" regnum="0"/>
  <reg name="ra" bitsize="64" type="code_ptr"/>
  <reg name="pc" bitsize="64" type="code_ptr"/>
  <reg bitsize="64"/>
  <reg name="sstatus" bitsize="64" regnum="3141"/>
  <reg name="sepc" bitsize="64"/>
</feature>"#;
        let mut map = RegisterMap::default();
        let mut next = 0;
        for item in parse_items(xml).unwrap() {
            number_registers(&item, &mut next, &mut map).unwrap();
        }
        let names: Vec<_> = map
            .registers
            .iter()
            .map(|r| (r.name.as_str(), r.regnum))
            .collect();
        assert_eq!(
            names,
            vec![
                ("zero", 0),
                ("ra", 1),
                ("pc", 2),
                ("sstatus", 3141),
                ("sepc", 3142)
            ]
        );
        assert_eq!(map.by_name("sepc").unwrap().bitsize, 64);
        assert_eq!(map.by_number(2).unwrap().name, "pc");
        assert!(map.by_name("x9").is_none());
    }

    #[test]
    fn register_numbers_past_32_bits_are_errors_not_overflows() {
        // The largest number is fine for the last register; the one after it has none left.
        let xml = r#"<reg name="a" bitsize="64" regnum="4294967295"/><reg name="b" bitsize="64"/>"#;
        let items = parse_items(xml).unwrap();
        let (mut map, mut next) = (RegisterMap::default(), 0);
        number_registers(&items[0], &mut next, &mut map).unwrap();
        assert_eq!(map.by_name("a").unwrap().regnum, u32::MAX);
        let err = number_registers(&items[1], &mut next, &mut map).unwrap_err();
        assert!(err.to_string().contains("register number"), "{err}");
        assert!(map.by_name("b").is_none());
        // A number that does not fit is not silently dropped (the registers after it would be
        // numbered wrong).
        for bad in ["4294967296", "-1", "0x20", ""] {
            let xml = format!(r#"<reg name="a" bitsize="64" regnum="{bad}"/>"#);
            let err = parse_items(&xml).unwrap_err();
            assert!(err.to_string().contains("regnum"), "{bad}: {err}");
        }
    }
}
