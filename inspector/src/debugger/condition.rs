//! Breakpoint conditions over the stopped function's decoded arguments: parsing
//! (`owner == 7 && npages > 4`, `tag == "user_stack" || !debug`) and evaluation. The inspector
//! evaluates them itself and resumes the guest silently when one is false.
//!
//! Grammar (lowest precedence first):
//! ```text
//! or      := and ("||" and)*
//! and     := unary ("&&" unary)*
//! unary   := "!" unary | "(" or ")" | compare
//! compare := operand [("==" | "!=" | "<" | "<=" | ">" | ">=") operand]
//! operand := name ("." field)* | integer (decimal, 0x hex, optional -) | "string" | true | false
//! ```
//! Contract: a name that is not an argument is an error at evaluation (check with
//! [`Condition::names`] before arming a breakpoint), never silently false.

use std::fmt;

use super::args::ArgValue;

/// A parsed condition; `Display` prints it back in canonical form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    expr: Expr,
    source: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Compare(Operand, CmpOp, Operand),
    Truthy(Operand),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Operand {
    /// An argument, optionally with struct field path: `tag`, `e.pa`.
    Name(Vec<String>),
    Int(i128),
    Str(String),
    Bool(bool),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A syntax error, with the byte position in the source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot parse condition `{text}` at column {}: {message}", position + 1)]
pub struct ParseError {
    pub text: String,
    pub position: usize,
    pub message: String,
}

/// Why a condition could not be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    #[error("`{name}` is not an argument here (arguments: {available})")]
    UnknownName { name: String, available: String },
    #[error("`{name}` is unavailable ({reason})")]
    Unavailable { name: String, reason: String },
    #[error("cannot compare {left} with {right}")]
    Mismatch { left: String, right: String },
}

/// Looks up an argument (with a field path) for a condition.
pub trait Scope {
    /// The value of `path[0]` (then its fields `path[1..]`), or `None` if there is no such name.
    fn lookup(&self, path: &[String]) -> Option<ArgValue>;
    /// The names that exist, for error messages.
    fn names(&self) -> Vec<String>;
}

impl Condition {
    pub fn parse(source: &str) -> Result<Condition, ParseError> {
        let tokens = lex(source)?;
        let mut p = Parser {
            tokens,
            pos: 0,
            source,
        };
        let expr = p.or()?;
        if let Some((tok, at)) = p.tokens.get(p.pos) {
            return Err(p.error(*at, format!("unexpected `{tok}`")));
        }
        Ok(Condition {
            expr,
            source: source.trim().to_string(),
        })
    }

    /// The source text as given (trimmed).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The argument names the condition refers to (first path component), in order.
    pub fn names(&self) -> Vec<String> {
        let mut out = Vec::new();
        fn walk(e: &Expr, out: &mut Vec<String>) {
            let mut op = |o: &Operand| {
                if let Operand::Name(p) = o {
                    if !out.contains(&p[0]) {
                        out.push(p[0].clone());
                    }
                }
            };
            match e {
                Expr::Or(a, b) | Expr::And(a, b) => {
                    walk(a, out);
                    walk(b, out);
                }
                Expr::Not(a) => walk(a, out),
                Expr::Compare(a, _, b) => {
                    op(a);
                    op(b);
                }
                Expr::Truthy(a) => op(a),
            }
        }
        walk(&self.expr, &mut out);
        out
    }

    /// Evaluates against `scope`. `&&` and `||` short-circuit.
    pub fn eval(&self, scope: &dyn Scope) -> Result<bool, EvalError> {
        eval(&self.expr, scope)
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

fn eval(e: &Expr, scope: &dyn Scope) -> Result<bool, EvalError> {
    Ok(match e {
        Expr::Or(a, b) => eval(a, scope)? || eval(b, scope)?,
        Expr::And(a, b) => eval(a, scope)? && eval(b, scope)?,
        Expr::Not(a) => !eval(a, scope)?,
        Expr::Truthy(o) => match value(o, scope)? {
            V::Int(i) => i != 0,
            V::Bool(b) => b,
            V::Str(s) => !s.is_empty(),
        },
        Expr::Compare(a, op, b) => {
            let (l, r) = (value(a, scope)?, value(b, scope)?);
            let ord = match (&l, &r) {
                (V::Int(x), V::Int(y)) => x.cmp(y),
                (V::Bool(x), V::Bool(y)) => x.cmp(y),
                (V::Str(x), V::Str(y)) => x.cmp(y),
                (V::Bool(x), V::Int(y)) => i128::from(*x).cmp(y),
                (V::Int(x), V::Bool(y)) => x.cmp(&i128::from(*y)),
                _ => {
                    return Err(EvalError::Mismatch {
                        left: l.describe(),
                        right: r.describe(),
                    })
                }
            };
            use std::cmp::Ordering::*;
            match op {
                CmpOp::Eq => ord == Equal,
                CmpOp::Ne => ord != Equal,
                CmpOp::Lt => ord == Less,
                CmpOp::Le => ord != Greater,
                CmpOp::Gt => ord == Greater,
                CmpOp::Ge => ord != Less,
            }
        }
    })
}

/// A comparable value.
#[derive(Debug)]
enum V {
    Int(i128),
    Bool(bool),
    Str(String),
}

impl V {
    fn describe(&self) -> String {
        match self {
            V::Int(i) => format!("the number {i}"),
            V::Bool(b) => format!("the boolean {b}"),
            V::Str(s) => format!("the string {s:?}"),
        }
    }
}

fn value(o: &Operand, scope: &dyn Scope) -> Result<V, EvalError> {
    Ok(match o {
        Operand::Int(i) => V::Int(*i),
        Operand::Str(s) => V::Str(s.clone()),
        Operand::Bool(b) => V::Bool(*b),
        Operand::Name(path) => {
            let name = path.join(".");
            let v = scope.lookup(path).ok_or_else(|| EvalError::UnknownName {
                name: name.clone(),
                available: scope.names().join(", "),
            })?;
            match v {
                ArgValue::UInt(u) => V::Int(i128::try_from(u).unwrap_or(i128::MAX)),
                ArgValue::Int(i) => V::Int(i),
                ArgValue::Bool(b) => V::Bool(b),
                ArgValue::Str(s) => V::Str(s),
                ArgValue::Char(c) => V::Int(i128::from(u32::from(c))),
                ArgValue::Enum { value, .. } => V::Int(value),
                ArgValue::Pointer(p) => V::Int(i128::from(p)),
                ArgValue::Unavailable(reason) => {
                    return Err(EvalError::Unavailable { name, reason })
                }
                ArgValue::Other(text) => {
                    return Err(EvalError::Unavailable {
                        name,
                        reason: format!("not a number or string: {text}"),
                    })
                }
            }
        }
    })
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    Int(i128),
    Str(String),
    Op(&'static str),
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Ident(s) => f.write_str(s),
            Tok::Int(i) => write!(f, "{i}"),
            Tok::Str(s) => write!(f, "{s:?}"),
            Tok::Op(o) => f.write_str(o),
        }
    }
}

const OPS: [&str; 13] = [
    "==", "!=", "<=", ">=", "&&", "||", "<", ">", "!", "(", ")", ".", "=",
];

fn lex(src: &str) -> Result<Vec<(Tok, usize)>, ParseError> {
    let err = |position: usize, message: String| ParseError {
        text: src.to_string(),
        position,
        message,
    };
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i] as char;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        if c.is_ascii_alphabetic() || c == '_' {
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            out.push((Tok::Ident(src[start..i].to_string()), start));
        } else if c.is_ascii_digit()
            || (c == '-' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            i += 1;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            let text = src[start..i].replace('_', "");
            let (neg, digits) = match text.strip_prefix('-') {
                Some(d) => (true, d.to_string()),
                None => (false, text.clone()),
            };
            let parsed = match digits
                .strip_prefix("0x")
                .or_else(|| digits.strip_prefix("0X"))
            {
                Some(hex) => i128::from_str_radix(hex, 16),
                None => digits.parse::<i128>(),
            }
            .map_err(|_| err(start, format!("`{text}` is not a number")))?;
            out.push((Tok::Int(if neg { -parsed } else { parsed }), start));
        } else if c == '"' || c == '\'' {
            i += 1;
            let mut s = String::new();
            loop {
                match bytes.get(i) {
                    None => return Err(err(start, "unterminated string".into())),
                    Some(&b) if b as char == c => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') if i + 1 < bytes.len() => {
                        s.push(bytes[i + 1] as char);
                        i += 2;
                    }
                    Some(_) => {
                        let ch = src[i..].chars().next().expect("in bounds");
                        s.push(ch);
                        i += ch.len_utf8();
                    }
                }
            }
            out.push((Tok::Str(s), start));
        } else {
            let op = OPS
                .iter()
                .find(|op| src[i..].starts_with(**op))
                .ok_or_else(|| err(i, format!("unexpected character `{c}`")))?;
            if *op == "=" {
                return Err(err(i, "use `==` to compare".into()));
            }
            i += op.len();
            out.push((Tok::Op(op), start));
        }
    }
    Ok(out)
}

struct Parser<'s> {
    tokens: Vec<(Tok, usize)>,
    pos: usize,
    source: &'s str,
}

impl Parser<'_> {
    fn error(&self, position: usize, message: String) -> ParseError {
        ParseError {
            text: self.source.to_string(),
            position,
            message,
        }
    }

    fn end_position(&self) -> usize {
        self.source.len()
    }

    fn peek_op(&self) -> Option<&'static str> {
        match self.tokens.get(self.pos) {
            Some((Tok::Op(o), _)) => Some(o),
            _ => None,
        }
    }

    fn eat(&mut self, op: &str) -> bool {
        if self.peek_op() == Some(op) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut e = self.and()?;
        while self.eat("||") {
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut e = self.unary()?;
        while self.eat("&&") {
            e = Expr::And(Box::new(e), Box::new(self.unary()?));
        }
        Ok(e)
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        if self.eat("!") {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.eat("(") {
            let e = self.or()?;
            if !self.eat(")") {
                let at = self
                    .tokens
                    .get(self.pos)
                    .map_or(self.end_position(), |t| t.1);
                return Err(self.error(at, "expected `)`".into()));
            }
            return Ok(e);
        }
        let left = self.operand()?;
        let op = match self.peek_op() {
            Some("==") => CmpOp::Eq,
            Some("!=") => CmpOp::Ne,
            Some("<") => CmpOp::Lt,
            Some("<=") => CmpOp::Le,
            Some(">") => CmpOp::Gt,
            Some(">=") => CmpOp::Ge,
            _ => return Ok(Expr::Truthy(left)),
        };
        self.pos += 1;
        let right = self.operand()?;
        Ok(Expr::Compare(left, op, right))
    }

    fn operand(&mut self) -> Result<Operand, ParseError> {
        let Some((tok, at)) = self.tokens.get(self.pos).cloned() else {
            return Err(self.error(self.end_position(), "expected a value".into()));
        };
        self.pos += 1;
        Ok(match tok {
            Tok::Int(i) => Operand::Int(i),
            Tok::Str(s) => Operand::Str(s),
            Tok::Ident(s) if s == "true" => Operand::Bool(true),
            Tok::Ident(s) if s == "false" => Operand::Bool(false),
            Tok::Ident(s) => {
                let mut path = vec![s];
                while self.eat(".") {
                    match self.tokens.get(self.pos).cloned() {
                        Some((Tok::Ident(f), _)) => {
                            self.pos += 1;
                            path.push(f);
                        }
                        Some((Tok::Int(i), _)) if i >= 0 => {
                            self.pos += 1;
                            path.push(i.to_string());
                        }
                        other => {
                            let at = other.map_or(self.end_position(), |t| t.1);
                            return Err(self.error(at, "expected a field name after `.`".into()));
                        }
                    }
                }
                Operand::Name(path)
            }
            Tok::Op(o) => return Err(self.error(at, format!("expected a value, found `{o}`"))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    struct Args(BTreeMap<String, ArgValue>);

    impl Scope for Args {
        fn lookup(&self, path: &[String]) -> Option<ArgValue> {
            (path.len() == 1)
                .then(|| self.0.get(&path[0]).cloned())
                .flatten()
        }
        fn names(&self) -> Vec<String> {
            self.0.keys().cloned().collect()
        }
    }

    fn args() -> Args {
        Args(BTreeMap::from([
            ("pa".into(), ArgValue::UInt(0x8050_0000)),
            ("npages".into(), ArgValue::UInt(4)),
            ("owner".into(), ArgValue::UInt(7)),
            ("tag".into(), ArgValue::Str("user_stack".into())),
            ("debug".into(), ArgValue::Bool(false)),
            ("delta".into(), ArgValue::Int(-3)),
            ("gone".into(), ArgValue::Unavailable("optimized out".into())),
        ]))
    }

    fn check(src: &str) -> bool {
        Condition::parse(src)
            .unwrap_or_else(|e| panic!("{e}"))
            .eval(&args())
            .unwrap_or_else(|e| panic!("{src}: {e}"))
    }

    #[test]
    fn comparisons() {
        assert!(check("owner == 7"));
        assert!(!check("owner == 8"));
        assert!(check("owner != 8"));
        assert!(check("npages > 3") && !check("npages > 4"));
        assert!(check("npages >= 4") && !check("npages >= 5"));
        assert!(check("npages < 5") && !check("npages < 4"));
        assert!(check("npages <= 4") && !check("npages <= 3"));
        assert!(check("pa == 0x80500000"));
        assert!(check("pa == 0x8050_0000"));
        assert!(check("delta == -3") && check("delta < 0"));
        assert!(check("7 == owner"));
    }

    #[test]
    fn strings_and_booleans() {
        assert!(check(r#"tag == "user_stack""#));
        assert!(check("tag == 'user_stack'"));
        assert!(!check(r#"tag == "alloc_pages""#));
        assert!(check(r#"tag != "alloc_pages""#));
        assert!(check("!debug"));
        assert!(check("debug == false"));
        assert!(check("tag"), "a non-empty string is true");
    }

    #[test]
    fn logic_precedence_and_parentheses() {
        assert!(check("owner == 7 && npages > 3"));
        assert!(!check("owner == 7 && npages > 4"));
        assert!(check("owner == 8 || npages == 4"));
        // && binds tighter than ||
        assert!(check("owner == 7 || owner == 8 && npages == 99"));
        assert!(!check("(owner == 7 || owner == 8) && npages == 99"));
        assert!(check("!(owner == 8)"));
        assert!(check("!!(owner == 7)"));
    }

    #[test]
    fn short_circuit_skips_unavailable_values() {
        assert!(check("owner == 7 || gone == 1"));
        assert!(!check("owner == 8 && gone == 1"));
        let err = Condition::parse("gone == 1")
            .unwrap()
            .eval(&args())
            .unwrap_err();
        assert!(matches!(err, EvalError::Unavailable { .. }), "{err}");
    }

    #[test]
    fn unknown_names_and_type_mismatches_are_errors() {
        let err = Condition::parse("pid == 3")
            .unwrap()
            .eval(&args())
            .unwrap_err();
        assert!(
            err.to_string().contains("`pid` is not an argument"),
            "{err}"
        );
        assert!(
            err.to_string().contains("owner"),
            "lists the arguments: {err}"
        );
        let err = Condition::parse("tag == 3")
            .unwrap()
            .eval(&args())
            .unwrap_err();
        assert!(matches!(err, EvalError::Mismatch { .. }), "{err}");
    }

    #[test]
    fn names_lists_referenced_arguments() {
        let c = Condition::parse("owner == 7 && (npages > 1 || owner != tag.len)").unwrap();
        assert_eq!(c.names(), vec!["owner", "npages", "tag"]);
        assert_eq!(c.source(), "owner == 7 && (npages > 1 || owner != tag.len)");
    }

    #[test]
    fn syntax_errors_say_where() {
        for (src, col) in [
            ("owner = 7", 7),
            ("owner ==", 9),
            ("(owner == 7", 12),
            ("owner == 7 7", 12),
            ("owner == \"x", 10),
            ("owner == 0xzz", 10),
            ("owner # 3", 7),
            ("&& owner", 1),
        ] {
            let e = Condition::parse(src).unwrap_err();
            assert_eq!(e.position + 1, col, "{src}: {e}");
            assert!(e.to_string().contains(src), "{e}");
        }
    }
}
