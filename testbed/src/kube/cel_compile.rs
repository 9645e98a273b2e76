//! Compiling a CRD validation rule as kube-apiserver does, as far as names go: the rule is
//! parsed with the `cel` crate, every function it calls is looked up in the environment of
//! [`super::cel_env`] for the claimed version, and undeclared ones are reported in cel-go's
//! words and layout (`ERROR: <input>:L:C: undeclared reference to 'f' (in container '')`,
//! the source line and a caret under the call's `(`), sorted by position as cel-go's
//! `Errors.ToDisplayString` sorts them. Identifiers, overloads and types are not checked.

use cel::common::ast::{EntryExpr, Expr, IdedExpr};

use super::cel_env::{NAMESPACES, declared, new_rule_env};
use super::version::KubeVersion;

/// A call found in the AST: its name, the namespace target (if the target is a known
/// namespace identifier), whether it has a receiver, and its argument count.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CallKey {
    name: String,
    namespace: Option<String>,
    member: bool,
    args: usize,
}

/// Compile `expr` as kube-apiserver would for a new CRD rule when claiming `version`:
/// `None` when it compiles, else cel-go's issue list (`ERROR: <input>:L:C: ...` entries
/// with the source snippet and a caret, sorted by position).
pub fn compile(expr: &str, version: KubeVersion) -> Option<String> {
    let env = new_rule_env(version);
    // cel.OptionalTypes() (the `?.` / `[?` syntax) is part of the 1.28 environment.
    let optional = env >= 28;
    let source = expr.to_string();
    let parsed = std::panic::catch_unwind(move || {
        cel::parser::Parser::new()
            .enable_optional_syntax(optional)
            .parse(&source)
    });
    let ast = match parsed {
        Ok(Ok(ast)) => ast,
        Ok(Err(errors)) => {
            let issues = errors
                .errors
                .iter()
                .map(|e| {
                    let line = e.pos.0.max(1) as usize;
                    let col = (e.pos.1 - 1).max(0) as usize;
                    Issue {
                        line,
                        col,
                        message: syntax_message(&e.msg),
                    }
                })
                .collect();
            return Some(display(expr, issues));
        }
        Err(_) => {
            return Some(display(
                expr,
                vec![Issue {
                    line: 1,
                    col: 0,
                    message: "Syntax error: cannot parse the expression".into(),
                }],
            ));
        }
    };
    let mut calls = Vec::new();
    walk(&ast, &mut calls);
    let mut issues = Vec::new();
    let sites = call_sites(expr);
    for key in dedup(calls) {
        let mut undeclared = Vec::new();
        match &key.namespace {
            Some(ns) if !declared(&format!("{ns}.{}", key.name), env) => {
                // cel-go checker: the qualified name is not a function, so the target is
                // checked as an identifier (undeclared) and the call as a member function.
                undeclared.push(Undeclared::Namespace(ns.clone()));
                if !declared(&key.name, env) {
                    undeclared.push(Undeclared::Function);
                }
            }
            Some(_) => {}
            None if !declared(&key.name, env) => undeclared.push(Undeclared::Function),
            None => {}
        }
        if undeclared.is_empty() {
            continue;
        }
        let matching: Vec<&Site> = sites.iter().filter(|s| s.key == key).collect();
        let fallback = Site {
            key: key.clone(),
            open: expr.find(&key.name).unwrap_or(0),
            namespace_at: 0,
        };
        let matching = if matching.is_empty() {
            vec![&fallback]
        } else {
            matching
        };
        for site in matching {
            for u in &undeclared {
                let (at, name) = match u {
                    Undeclared::Namespace(ns) => (site.namespace_at, ns.as_str()),
                    Undeclared::Function => (site.open, key.name.as_str()),
                };
                let (line, col) = line_col(expr, at);
                issues.push(Issue {
                    line,
                    col,
                    message: format!("undeclared reference to '{name}' (in container '')"),
                });
            }
        }
    }
    if issues.is_empty() {
        None
    } else {
        Some(display(expr, issues))
    }
}

enum Undeclared {
    Namespace(String),
    Function,
}

/// cel-go words ANTLR errors as `Syntax error: ...`; the cel crate's own messages
/// (macro misuse, reserved identifiers) are kept as they are.
fn syntax_message(msg: &str) -> String {
    if msg.starts_with("Syntax error") {
        msg.to_string()
    } else if msg.starts_with("mismatched")
        || msg.starts_with("extraneous")
        || msg.starts_with("no viable")
        || msg.starts_with("token recognition")
        || msg.starts_with("missing")
    {
        format!("Syntax error: {msg}")
    } else {
        msg.to_string()
    }
}

fn dedup(calls: Vec<CallKey>) -> Vec<CallKey> {
    let mut out: Vec<CallKey> = Vec::new();
    for c in calls {
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

fn walk(e: &IdedExpr, out: &mut Vec<CallKey>) {
    match &e.expr {
        Expr::Call(call) => {
            let operator = call.func_name.starts_with('_')
                || call.func_name.starts_with('@')
                || call.func_name.starts_with("!_")
                || call.func_name.starts_with("-_");
            let namespace = match call.target.as_deref() {
                Some(IdedExpr {
                    expr: Expr::Ident(id),
                    ..
                }) if NAMESPACES.contains(&id.as_str()) => Some(id.clone()),
                _ => None,
            };
            if !operator {
                out.push(CallKey {
                    name: call.func_name.clone(),
                    namespace: namespace.clone(),
                    member: call.target.is_some(),
                    args: call.args.len(),
                });
            }
            if let Some(t) = &call.target
                && namespace.is_none()
            {
                walk(t, out);
            }
            for a in &call.args {
                walk(a, out);
            }
        }
        Expr::Comprehension(c) => {
            for x in [
                &c.iter_range,
                &c.accu_init,
                &c.loop_cond,
                &c.loop_step,
                &c.result,
            ] {
                walk(x, out);
            }
        }
        Expr::List(l) => l.elements.iter().for_each(|x| walk(x, out)),
        Expr::Map(m) => m.entries.iter().for_each(|x| walk_entry(&x.expr, out)),
        Expr::Struct(s) => s.entries.iter().for_each(|x| walk_entry(&x.expr, out)),
        Expr::Select(s) => walk(&s.operand, out),
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
    }
}

fn walk_entry(e: &EntryExpr, out: &mut Vec<CallKey>) {
    match e {
        EntryExpr::StructField(f) => walk(&f.value, out),
        EntryExpr::MapEntry(m) => {
            walk(&m.key, out);
            walk(&m.value, out);
        }
    }
}

/// A call in the source text: where its `(` is (cel-go locates a call there) and where
/// its namespace identifier starts.
#[derive(Debug)]
struct Site {
    key: CallKey,
    open: usize,
    namespace_at: usize,
}

#[derive(Debug, PartialEq)]
enum Tok {
    Ident(String),
    Punct(char),
    Literal,
}

/// Identifiers, punctuation and literals with their byte offsets; comments skipped.
fn tokens(src: &str) -> Vec<(Tok, usize)> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'"' || c == b'\'' {
            out.push((Tok::Literal, i));
            i = skip_string(b, i, false);
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            let word = &src[start..i];
            let prefix = word.len() <= 2
                && word.chars().all(|ch| matches!(ch, 'r' | 'R' | 'b' | 'B'))
                && matches!(b.get(i), Some(b'"' | b'\''));
            if prefix {
                out.push((Tok::Literal, start));
                i = skip_string(b, i, word.contains(['r', 'R']));
            } else {
                out.push((Tok::Ident(word.to_string()), start));
            }
        } else if c.is_ascii_digit() {
            out.push((Tok::Literal, i));
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                i += 1;
            }
        } else {
            out.push((Tok::Punct(c as char), i));
            i += 1;
        }
    }
    out
}

/// The offset after the string literal starting at `i` (single, double or triple quoted).
fn skip_string(b: &[u8], i: usize, raw: bool) -> usize {
    let q = b[i];
    let triple = b.get(i + 1) == Some(&q) && b.get(i + 2) == Some(&q);
    let mut j = if triple { i + 3 } else { i + 1 };
    while j < b.len() {
        if b[j] == b'\\' && !raw {
            j += 2;
            continue;
        }
        if b[j] == q && (!triple || (b.get(j + 1) == Some(&q) && b.get(j + 2) == Some(&q))) {
            return if triple { j + 3 } else { j + 1 };
        }
        j += 1;
    }
    b.len()
}

fn call_sites(src: &str) -> Vec<Site> {
    let toks = tokens(src);
    let mut out = Vec::new();
    for i in 0..toks.len() {
        let (Tok::Ident(name), _) = &toks[i] else {
            continue;
        };
        let Some((Tok::Punct('('), open)) = toks.get(i + 1) else {
            continue;
        };
        let member = i >= 1 && toks[i - 1].0 == Tok::Punct('.');
        let mut namespace = None;
        let mut namespace_at = 0;
        if member
            && i >= 2
            && let (Tok::Ident(ns), at) = &toks[i - 2]
            && NAMESPACES.contains(&ns.as_str())
            && (i < 3 || toks[i - 3].0 != Tok::Punct('.'))
        {
            namespace = Some(ns.clone());
            namespace_at = *at;
        }
        out.push(Site {
            key: CallKey {
                name: name.clone(),
                namespace,
                member,
                args: arg_count(&toks[i + 2..]),
            },
            open: *open,
            namespace_at,
        });
    }
    out
}

/// Arguments between an opening `(` (already consumed) and its `)`.
fn arg_count(rest: &[(Tok, usize)]) -> usize {
    let mut depth = 0usize;
    let mut commas = 0;
    for (i, (t, _)) in rest.iter().enumerate() {
        match t {
            Tok::Punct('(' | '[' | '{') => depth += 1,
            Tok::Punct(')' | ']' | '}') if depth == 0 => {
                return if i == 0 { 0 } else { commas + 1 };
            }
            Tok::Punct(')' | ']' | '}') => depth -= 1,
            Tok::Punct(',') if depth == 0 => commas += 1,
            _ => {}
        }
    }
    commas + 1
}

/// 1-based line and 0-based column (in characters) of a byte offset, as cel-go locates.
fn line_col(src: &str, at: usize) -> (usize, usize) {
    let before = &src[..at.min(src.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|p| p + 1).unwrap_or(0);
    (line, before[line_start..].chars().count())
}

struct Issue {
    line: usize,
    col: usize,
    message: String,
}

/// cel-go `Errors.ToDisplayString`: sorted by position, each
/// `ERROR: <input>:L:C: msg` with the source line and a caret under the column.
fn display(src: &str, mut issues: Vec<Issue>) -> String {
    issues.sort_by_key(|i| (i.line, i.col));
    issues.dedup_by(|a, b| a.line == b.line && a.col == b.col && a.message == b.message);
    let lines: Vec<&str> = src.split('\n').collect();
    issues
        .iter()
        .map(|i| {
            let mut s = format!("ERROR: <input>:{}:{}: {}", i.line, i.col + 1, i.message);
            if let Some(snippet) = lines.get(i.line - 1) {
                let snippet = snippet.replace('\t', " ");
                s.push_str("\n | ");
                s.push_str(&snippet);
                s.push_str("\n | ");
                let mut chars = snippet.chars();
                for _ in 0..i.col {
                    match chars.next() {
                        Some(c) if c.len_utf8() > 1 => s.push('\u{ff0e}'),
                        Some(_) => s.push('.'),
                        None => break,
                    }
                }
                match chars.next() {
                    Some(c) if c.len_utf8() > 1 => s.push('\u{ff3e}'),
                    _ => s.push('^'),
                }
            }
            s
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minor: u32) -> KubeVersion {
        KubeVersion::new(1, minor)
    }

    #[test]
    fn standard_functions_compile_everywhere() {
        for e in [
            "self.matches('^a$') && size(self) < 5",
            "self.all(x, x.startsWith('a')) && self.exists_one(x, x == 'b')",
            "has(self.a) ? self.a.map(x, x + 1).filter(y, y > 2).size() > 0 : true",
            "int(self) + duration('1s').getSeconds() > 0",
        ] {
            assert_eq!(compile(e, at(29)), None, "{e}");
        }
    }

    #[test]
    fn library_functions_follow_the_previous_minor() {
        let err = compile("isIP(self)", at(30)).expect("refused at 1.30");
        assert_eq!(
            err,
            "ERROR: <input>:1:5: undeclared reference to 'isIP' (in container '')\n | isIP(self)\n | ....^"
        );
        assert_eq!(compile("isIP(self)", at(31)), None);
        assert!(compile("self.lowerAscii() == 'a'", at(29)).is_none());
        assert!(compile("sets.contains(self, ['a'])", at(29)).is_some());
        assert!(compile("sets.contains(self, ['a'])", at(30)).is_none());
        assert!(compile("self.all(k, v, v > 0)", at(32)).is_some());
        assert!(compile("self.all(k, v, v > 0)", at(33)).is_none());
        assert!(compile("self.a.?b.hasValue()", at(29)).is_none());
    }

    #[test]
    fn namespaced_functions_report_the_namespace_and_the_call() {
        let err = compile("format.named('dns1123Label').hasValue()", at(31)).expect("refused");
        assert!(
            err.starts_with(
                "ERROR: <input>:1:1: undeclared reference to 'format' (in container '')"
            ),
            "{err}"
        );
        assert!(
            err.contains("ERROR: <input>:1:13: undeclared reference to 'named'"),
            "{err}"
        );
        assert_eq!(
            compile("format.named('dns1123Label').hasValue()", at(32)),
            None
        );
        let err = compile("math.greatest(1, 2) == 2", at(40)).expect("never declared");
        assert!(err.contains("undeclared reference to 'math'"), "{err}");
        assert!(err.contains("undeclared reference to 'greatest'"), "{err}");
    }

    #[test]
    fn unknown_names_and_literals() {
        let err = compile("'isIP(x)' == self && frobnicate(self)", at(40)).expect("unknown");
        assert_eq!(
            err,
            "ERROR: <input>:1:32: undeclared reference to 'frobnicate' (in container '')\n | 'isIP(x)' == self && frobnicate(self)\n | ...............................^"
        );
        assert!(
            compile("self ==", at(29))
                .expect("syntax")
                .starts_with("ERROR: <input>:1:")
        );
    }
}
