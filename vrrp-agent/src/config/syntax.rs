//! keepalived.conf syntax: words and blocks, before any keyword means anything.
//!
//! keepalived reads a line at a time: a statement is the words of one line, and a `{` at the end
//! of that line (or alone on the next) opens its block. Lines arrive preprocessed (comments,
//! includes, parameters: [`super::preprocess`]); `"` and `'` quote words, with keepalived's
//! backslash escapes inside double quotes.

use std::path::Path;

use super::{
    diagnostic::{Diagnostic, Location},
    preprocess::{self, BANG, HASH, Options, SourceLine},
};

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

/// A token and the logical line it is on (lines of one source line, from a generator or a
/// multi-line parameter, are distinct statements).
type Placed = (usize, Token);

/// A word being assembled from unquoted runs and quoted segments (`a"b c"d` is one word).
struct Pending {
    text: String,
    start: usize,
}

/// Splits the lines into tokens, keepalived's way: words end at unquoted whitespace, quotes
/// may join runs into one word, `{` and `}` are tokens even when glued to a word. Errors and
/// warnings are collected, not fatal, so one run reports them all.
fn tokenize(
    lines: &[SourceLine],
    errors: &mut Vec<Diagnostic>,
    warnings: &mut Vec<Diagnostic>,
) -> Vec<Placed> {
    let mut tokens = Vec::new();
    for (index, source) in lines.iter().enumerate() {
        let at = |col: usize| Location {
            file: source.file.clone(),
            line: source.line,
            col: col as u32 + 1,
        };
        let chars: Vec<char> = source.text.chars().collect();
        let mut word: Option<Pending> = None;
        let finish = |word: &mut Option<Pending>, tokens: &mut Vec<Placed>| {
            if let Some(w) = word.take() {
                tokens.push((
                    index,
                    Token::Word(Word {
                        text: w.text,
                        location: at(w.start),
                    }),
                ));
            }
        };
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            match c {
                '\u{a0}' => {
                    errors.push(
                        Diagnostic::new(&at(i), "a no-break space (U+00A0) where a space belongs")
                            .hint("this usually comes from copying a web page: retype the space"),
                    );
                    finish(&mut word, &mut tokens);
                    i += 1;
                }
                c if c.is_whitespace() => {
                    finish(&mut word, &mut tokens);
                    i += 1;
                }
                '{' | '}' => {
                    if c == '}'
                        && let Some(w) = &word
                    {
                        warnings.push(
                            Diagnostic::new(
                                &at(i),
                                format!("`}}` glued to `{}` closes the block here", w.text),
                            )
                            .hint("keepalived reads it the same way; if the block goes on after this line, remove the `}`"),
                        );
                    }
                    finish(&mut word, &mut tokens);
                    tokens.push((
                        index,
                        if c == '{' {
                            Token::Open(at(i))
                        } else {
                            Token::Close(at(i))
                        },
                    ));
                    i += 1;
                }
                '"' | '\'' => {
                    let start = i;
                    let w = word.get_or_insert(Pending {
                        text: String::new(),
                        start,
                    });
                    i += 1;
                    let mut closed = false;
                    while i < chars.len() {
                        let ch = chars[i];
                        if ch == c {
                            closed = true;
                            i += 1;
                            break;
                        }
                        if ch == '\\' && c == '"' {
                            i = escape(&chars, i, &mut w.text);
                            continue;
                        }
                        w.text.push(placeholder(ch));
                        i += 1;
                    }
                    if !closed {
                        errors.push(
                            Diagnostic::new(&at(start), format!("unterminated {c} quote"))
                                .hint(format!("close the string with {c} on the same line")),
                        );
                    }
                }
                '\\' => {
                    let w = word.get_or_insert(Pending {
                        text: String::new(),
                        start: i,
                    });
                    i = escape(&chars, i, &mut w.text);
                }
                _ => {
                    word.get_or_insert(Pending {
                        text: String::new(),
                        start: i,
                    })
                    .text
                    .push(placeholder(c));
                    i += 1;
                }
            }
        }
        finish(&mut word, &mut tokens);
    }
    tokens
}

/// `${_HASH}` and `${_BANG}` come through the preprocessor as placeholders so they start no
/// comment; here they become the characters they stand for.
fn placeholder(c: char) -> char {
    match c {
        HASH => '#',
        BANG => '!',
        c => c,
    }
}

/// Applies the escape at `chars[i]` (a backslash) to `out`, returning the index after it:
/// `\a \b \E \f \n \r \t \v`, `\nnn` (octal), `\xXX` (hex), `\cC` (control), `\C` -> `C`.
fn escape(chars: &[char], i: usize, out: &mut String) -> usize {
    let Some(&next) = chars.get(i + 1) else {
        out.push('\\');
        return i + 1;
    };
    let simple = match next {
        'a' => Some('\u{7}'),
        'b' => Some('\u{8}'),
        'E' => Some('\u{1b}'),
        'f' => Some('\u{c}'),
        'n' => Some('\n'),
        'r' => Some('\r'),
        't' => Some('\t'),
        'v' => Some('\u{b}'),
        _ => None,
    };
    if let Some(c) = simple {
        out.push(c);
        return i + 2;
    }
    let digits = |from: usize, radix: u32, max: usize| {
        chars[from..]
            .iter()
            .take(max)
            .take_while(|c| c.is_digit(radix))
            .count()
    };
    match next {
        '0'..='7' => {
            let n = digits(i + 1, 8, 3);
            let value: String = chars[i + 1..i + 1 + n].iter().collect();
            out.push(char::from(u8::from_str_radix(&value, 8).unwrap_or(0)));
            i + 1 + n
        }
        'x' if digits(i + 2, 16, usize::MAX) > 0 => {
            let n = digits(i + 2, 16, 2);
            let value: String = chars[i + 2..i + 2 + n].iter().collect();
            out.push(char::from(u8::from_str_radix(&value, 16).unwrap_or(0)));
            i + 2 + n
        }
        'c' if i + 2 < chars.len() => {
            out.push(char::from((chars[i + 2] as u8) & 0x1f));
            i + 3
        }
        other => {
            out.push(other);
            i + 2
        }
    }
}

/// A parsed file: its statements and the warnings found on the way.
pub struct Parsed {
    /// The top-level statements.
    pub statements: Vec<Statement>,
    /// Things keepalived accepts too but that are probably not what was meant.
    pub warnings: Vec<Diagnostic>,
}

/// Parses preprocessed lines into statements, reporting every syntax error with its location.
pub fn parse_lines(lines: &[SourceLine]) -> Result<Parsed, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let tokens = tokenize(lines, &mut errors, &mut warnings);
    let mut parser = Parser {
        tokens,
        pos: 0,
        errors,
    };
    let statements = parser.block(None, 0);
    if parser.errors.is_empty() {
        Ok(Parsed {
            statements,
            warnings,
        })
    } else {
        // The warnings often explain the errors (a glued `}` closing a block early makes a
        // later `}` close nothing): report them too, in file order.
        let mut all = parser.errors;
        all.extend(warnings);
        all.sort_by_key(|d| (d.location.file.clone(), d.location.line, d.location.col));
        Err(all)
    }
}

/// Preprocesses and parses configuration text that claims to come from `file`.
pub fn parse(file: &Path, text: &str, options: &Options) -> Result<Parsed, Vec<Diagnostic>> {
    let (lines, mut errors) = preprocess::expand_text(file, text, options);
    match parse_lines(&lines) {
        Ok(parsed) if errors.is_empty() => Ok(parsed),
        Ok(_) => Err(errors),
        Err(more) => {
            errors.extend(more);
            Err(errors)
        }
    }
}

/// How deep blocks may nest (keepalived's deepest is four: virtual_server, real_server, a
/// checker, `url`).
const MAX_NESTING: u32 = 16;

struct Parser {
    tokens: Vec<Placed>,
    pos: usize,
    errors: Vec<Diagnostic>,
}

impl Parser {
    /// Skips to the `}` closing the block just opened, without recursion.
    fn skip_block(&mut self) {
        let mut open = 1u32;
        while let Some((_, token)) = self.tokens.get(self.pos) {
            self.pos += 1;
            match token {
                Token::Open(_) => open += 1,
                Token::Close(_) => {
                    open -= 1;
                    if open == 0 {
                        return;
                    }
                }
                Token::Word(_) => {}
            }
        }
    }

    /// Parses statements until the `}` closing a block opened at `opened` (or the end), at
    /// nesting `depth`. Deeper than [`MAX_NESTING`] the block is reported and skipped: the
    /// recursion must not exhaust the stack on a hostile or generated file.
    fn block(&mut self, opened: Option<&Location>, depth: u32) -> Vec<Statement> {
        if let Some(at) = opened
            && depth > MAX_NESTING
        {
            self.errors.push(Diagnostic::new(
                at,
                format!("blocks nest more than {MAX_NESTING} deep"),
            ));
            self.skip_block();
            return Vec::new();
        }
        let mut statements: Vec<Statement> = Vec::new();
        while let Some((line, token)) = self.tokens.get(self.pos).cloned() {
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
                    let children = self.block(Some(&at), depth + 1);
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
                    let mut args = Vec::new();
                    let mut block = None;
                    while let Some((next_line, next)) = self.tokens.get(self.pos) {
                        if *next_line != line {
                            break;
                        }
                        match next.clone() {
                            Token::Word(w) => {
                                args.push(w);
                                self.pos += 1;
                            }
                            Token::Open(at) => {
                                self.pos += 1;
                                block = Some(self.block(Some(&at), depth + 1));
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

    fn parse_ok(text: &str) -> Parsed {
        let options = Options {
            config_id: "test".into(),
            includes_within: None,
        };
        parse(Path::new("k.conf"), text, &options).unwrap()
    }

    fn parse_err(text: &str) -> Vec<Diagnostic> {
        let options = Options {
            config_id: "test".into(),
            includes_within: None,
        };
        parse(Path::new("k.conf"), text, &options).err().unwrap()
    }

    /// Found by the config fuzz target: thousands of nested blocks overflowed the stack.
    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let text = format!(
            "a {}\nb\n{}",
            "x {\n".repeat(100_000),
            "}\n".repeat(100_000)
        );
        let errors = parse_err(&text);
        assert!(
            errors[0].message.contains("nest more than"),
            "{:?}",
            errors[0]
        );
    }

    #[test]
    fn blocks_on_same_and_next_line_and_comments() {
        let text = "global_defs {\n  router_id r1 # trailing\n}\n! whole line\nvrrp_instance VI_1\n{\n  virtual_ipaddress {\n    10.0.0.1/24\n  }\n}\n";
        let stmts = parse_ok(text).statements;
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
    fn quotes_join_runs_and_escapes_follow_keepalived() {
        let stmts = parse_ok("a \"b c\\\"d\" 'e f'\n").statements;
        assert_eq!(words(&stmts[0]), ["a", "b c\"d", "e f"]);
        // The man page's examples: quotes join, the whitespace inside is kept.
        let stmts = parse_ok("x abcd\" efg h jkl \"mnop\ny abcd \"efg h jkl\" mnop\n").statements;
        assert_eq!(words(&stmts[0]), ["x", "abcd efg h jkl mnop"]);
        assert_eq!(words(&stmts[1]), ["y", "abcd", "efg h jkl", "mnop"]);
        let stmts = parse_ok("e \"\\t\\x41\\101\\cA\\q\" 'no\\t'\n").statements;
        assert_eq!(words(&stmts[0]), ["e", "\tAA\u{1}q", "no\\t"]);
        // ${_HASH} and ${_BANG} make characters that start no comment.
        let stmts = parse_ok("h a${_HASH}b${_BANG}c\n").statements;
        assert_eq!(words(&stmts[0]), ["h", "a#b!c"]);
    }

    #[test]
    fn lines_from_one_generator_are_separate_statements() {
        let stmts = parse_ok("v {\n~SEQ(N, 1, 3) 10.0.0.${N}/24\n}\n").statements;
        let inner = stmts[0].block.as_ref().unwrap();
        assert_eq!(inner.len(), 3);
        assert_eq!(words(&inner[2]), ["10.0.0.3/24"]);
    }

    #[test]
    fn a_glued_closing_brace_closes_and_is_named() {
        let parsed = parse_ok("a {\n  interface wlan0}\n");
        assert_eq!(
            words(&parsed.statements[0].block.as_ref().unwrap()[0]),
            ["interface", "wlan0"]
        );
        let w = &parsed.warnings[0];
        assert_eq!((w.location.line, w.location.col), (2, 18));
        assert!(w.message.contains("glued to `wlan0`"), "{}", w.message);
    }

    #[test]
    fn errors_are_located() {
        let errs = parse_err("a {\n  b\u{a0}c\n");
        assert_eq!(errs.len(), 2);
        // In file order.
        assert_eq!((errs[0].location.line, errs[0].location.col), (1, 3));
        assert!(errs[0].message.contains("never closed"));
        assert_eq!((errs[1].location.line, errs[1].location.col), (2, 4));
        assert!(errs[1].message.contains("no-break space"));
        let errs = parse_err("x \"open\n}\n");
        assert!(errs[0].message.contains("unterminated"));
        assert!(errs[1].message.contains("closes no block"));
    }
}
