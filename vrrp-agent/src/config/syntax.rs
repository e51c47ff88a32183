//! keepalived.conf syntax: words and blocks, before any keyword means anything.
//!
//! keepalived reads a line at a time: a statement is the words of one line, and a `{` at the end
//! of that line (or alone on the next) opens its block. `#` and `!` start a comment anywhere
//! outside quotes; `"` and `'` quote words, with backslash escapes inside double quotes.

use std::{path::PathBuf, sync::Arc};

use super::diagnostic::{Diagnostic, Location};

/// One word of the configuration, with where it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Word {
    /// The text, with quotes removed and escapes applied.
    pub text: String,
    /// Where the word starts.
    pub location: Location,
}

/// A statement: a keyword, its arguments, and its block if it has one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    /// The keyword.
    pub keyword: Word,
    /// The words after the keyword on the same line.
    pub args: Vec<Word>,
    /// The statements inside `{ }`, when there is a block.
    pub block: Option<Vec<Statement>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Word(Word),
    Open(Location),
    Close(Location),
}

impl Token {
    fn location(&self) -> &Location {
        match self {
            Token::Word(w) => &w.location,
            Token::Open(l) | Token::Close(l) => l,
        }
    }
}

/// Splits a file into tokens. Errors are collected, not fatal, so one run reports them all.
fn tokenize(file: &Arc<PathBuf>, text: &str, errors: &mut Vec<Diagnostic>) -> Vec<Token> {
    let mut tokens = Vec::new();
    for (line_no, line) in text.lines().enumerate() {
        let at = |col: usize| Location {
            file: file.clone(),
            line: line_no as u32 + 1,
            col: col as u32 + 1,
        };
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            match c {
                '#' | '!' => break,
                '\u{a0}' => {
                    errors.push(
                        Diagnostic::new(&at(i), "a no-break space (U+00A0) where a space belongs")
                            .hint("this usually comes from copying a web page: retype the space"),
                    );
                    i += 1;
                }
                c if c.is_whitespace() => i += 1,
                '{' => {
                    tokens.push(Token::Open(at(i)));
                    i += 1;
                }
                '}' => {
                    tokens.push(Token::Close(at(i)));
                    i += 1;
                }
                '"' | '\'' => {
                    let start = i;
                    let mut text = String::new();
                    i += 1;
                    let mut closed = false;
                    while i < chars.len() {
                        let ch = chars[i];
                        if ch == c {
                            closed = true;
                            i += 1;
                            break;
                        }
                        if ch == '\\' && c == '"' && i + 1 < chars.len() {
                            text.push(match chars[i + 1] {
                                'n' => '\n',
                                't' => '\t',
                                other => other,
                            });
                            i += 2;
                            continue;
                        }
                        text.push(ch);
                        i += 1;
                    }
                    if !closed {
                        errors.push(
                            Diagnostic::new(&at(start), format!("unterminated {c} quote"))
                                .hint(format!("close the string with {c} on the same line")),
                        );
                    }
                    tokens.push(Token::Word(Word {
                        text,
                        location: at(start),
                    }));
                }
                _ => {
                    let start = i;
                    let mut text = String::new();
                    while i < chars.len() {
                        let ch = chars[i];
                        if ch.is_whitespace() || matches!(ch, '{' | '}' | '#' | '!' | '\u{a0}') {
                            break;
                        }
                        text.push(ch);
                        i += 1;
                    }
                    tokens.push(Token::Word(Word {
                        text,
                        location: at(start),
                    }));
                }
            }
        }
    }
    tokens
}

/// Parses a whole file into statements, reporting every syntax error with its location.
pub fn parse(file: PathBuf, text: &str) -> Result<Vec<Statement>, Vec<Diagnostic>> {
    let file = Arc::new(file);
    let mut errors = Vec::new();
    let tokens = tokenize(&file, text, &mut errors);
    let mut parser = Parser {
        tokens,
        pos: 0,
        errors,
    };
    let statements = parser.block(None);
    if parser.errors.is_empty() {
        Ok(statements)
    } else {
        Err(parser.errors)
    }
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    errors: Vec<Diagnostic>,
}

impl Parser {
    /// Parses statements until the `}` closing a block opened at `opened` (or the end).
    fn block(&mut self, opened: Option<&Location>) -> Vec<Statement> {
        let mut statements: Vec<Statement> = Vec::new();
        while let Some(token) = self.tokens.get(self.pos).cloned() {
            self.pos += 1;
            match token {
                Token::Close(at) => {
                    if opened.is_some() {
                        return statements;
                    }
                    self.errors.push(
                        Diagnostic::new(&at, "`}` closes no block")
                            .hint("remove it, or look for a `{` missing above"),
                    );
                }
                Token::Open(at) => {
                    // `{` alone on a line opens the block of the statement just before it.
                    let children = self.block(Some(&at));
                    match statements.last_mut() {
                        Some(last) if last.block.is_none() => last.block = Some(children),
                        _ => self.errors.push(
                            Diagnostic::new(&at, "`{` without a keyword before it").hint(
                                "a block belongs to a keyword such as `vrrp_instance NAME {`",
                            ),
                        ),
                    }
                }
                Token::Word(keyword) => {
                    let line = keyword.location.line;
                    let mut args = Vec::new();
                    let mut block = None;
                    while let Some(next) = self.tokens.get(self.pos) {
                        if next.location().line != line {
                            break;
                        }
                        match next.clone() {
                            Token::Word(w) => {
                                args.push(w);
                                self.pos += 1;
                            }
                            Token::Open(at) => {
                                self.pos += 1;
                                block = Some(self.block(Some(&at)));
                                break;
                            }
                            Token::Close(_) => break,
                        }
                    }
                    statements.push(Statement {
                        keyword,
                        args,
                        block,
                    });
                }
            }
        }
        if let Some(at) = opened {
            self.errors.push(
                Diagnostic::new(at, "this `{` is never closed")
                    .hint("add the matching `}` at the end of the block"),
            );
        }
        statements
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &Statement) -> Vec<&str> {
        std::iter::once(&s.keyword)
            .chain(&s.args)
            .map(|w| w.text.as_str())
            .collect()
    }

    #[test]
    fn blocks_on_same_and_next_line_and_comments() {
        let text = "global_defs {\n  router_id r1 # trailing\n}\n! whole line\nvrrp_instance VI_1\n{\n  virtual_ipaddress {\n    10.0.0.1/24\n  }\n}\n";
        let stmts = parse("k.conf".into(), text).unwrap();
        assert_eq!(stmts.len(), 2);
        assert_eq!(
            words(&stmts[0].block.as_ref().unwrap()[0]),
            ["router_id", "r1"]
        );
        assert_eq!(words(&stmts[1]), ["vrrp_instance", "VI_1"]);
        let vips = &stmts[1].block.as_ref().unwrap()[0];
        assert_eq!(words(&vips.block.as_ref().unwrap()[0]), ["10.0.0.1/24"]);
    }

    #[test]
    fn quotes_and_escapes() {
        let stmts = parse("k".into(), "a \"b c\\\"d\" 'e f'\n").unwrap();
        assert_eq!(words(&stmts[0]), ["a", "b c\"d", "e f"]);
    }

    #[test]
    fn errors_are_located() {
        let errs = parse("k".into(), "a {\n  b\u{a0}c\n").unwrap_err();
        assert_eq!(errs.len(), 2);
        assert_eq!((errs[0].location.line, errs[0].location.col), (2, 4));
        assert!(errs[0].message.contains("no-break space"));
        assert_eq!((errs[1].location.line, errs[1].location.col), (1, 3));
        let errs = parse("k".into(), "x \"open\n}\n").unwrap_err();
        assert!(errs[0].message.contains("unterminated"));
        assert!(errs[1].message.contains("closes no block"));
    }
}
