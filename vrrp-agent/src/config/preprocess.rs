//! keepalived's line preprocessing, before any word means anything: comments, `include` (and
//! its checked variants), `@id` / `@^id` conditional lines, `$NAME=value` parameters (with
//! multi-line definitions), `${NAME}` / `$NAME` substitution and the built-ins, and the
//! `~SEQ` / `~SEQx` / `~LST` line generators (keepalived.conf(5), "ADVANCED CONFIGURATION").
//!
//! The output is a list of logical lines, each remembering the file and line it came from, so
//! later errors still point into the file a person edits.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use super::diagnostic::{Diagnostic, Location};

mod glob;

use glob::{expand_braces, glob, has_wildcard};

/// How the configuration is read.
#[derive(Clone, Debug)]
pub struct Options {
    /// keepalived's config id (`-i`, default: the short host name), matched by `@id` lines
    /// and available as `${_INSTANCE}`.
    pub config_id: String,
    /// Includes may only read files under this directory (the fuzz target confines them to
    /// its scratch directory); `None` (the daemon) allows any.
    pub includes_within: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let short = host
            .trim()
            .split('.')
            .next()
            .unwrap_or_default()
            .to_string();
        Self {
            config_id: short,
            includes_within: None,
        }
    }
}

/// One logical line after preprocessing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceLine {
    /// The file it came from.
    pub file: Arc<PathBuf>,
    /// Its (first) line number there.
    pub line: u32,
    /// The text, comments removed and parameters substituted.
    pub text: String,
}

/// Placeholders for `${_HASH}` and `${_BANG}`: characters that must not start a comment once
/// substituted. The tokenizer turns them back into `#` and `!`.
pub const HASH: char = '\u{e000}';
/// See [`HASH`].
pub const BANG: char = '\u{e001}';

/// How deeply includes may nest and substitutions may recurse before we call it a loop.
const MAX_DEPTH: u32 = 32;

/// Lines the preprocessor will handle in all (after includes, generators and substitution)
/// before it gives up: a file that includes itself under a `~SEQ` doubles at every level and
/// would otherwise expand for ever. Far above any real configuration.
const MAX_LINES: u32 = 1_000_000;

/// Files the includes may read in all (the same file counts each time it is read).
const MAX_INCLUDES: u32 = 1_000;

/// Expands a configuration file.
pub fn expand_file(path: &Path, options: &Options) -> (Vec<SourceLine>, Vec<Diagnostic>) {
    let mut p = Preprocessor::new(options);
    let at = Location {
        file: Arc::new(path.to_path_buf()),
        line: 1,
        col: 1,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => p.file(path, &text, 0),
        Err(e) => p.errors.push(Diagnostic::new(
            &at,
            format!("cannot read the configuration: {e}"),
        )),
    }
    (p.out, p.errors)
}

/// Expands configuration text that claims to come from `path` (includes resolve from there).
pub fn expand_text(
    path: &Path,
    text: &str,
    options: &Options,
) -> (Vec<SourceLine>, Vec<Diagnostic>) {
    let mut p = Preprocessor::new(options);
    p.file(path, text, 0);
    (p.out, p.errors)
}

/// A parameter's value: one line, or the lines of a multi-line definition.
#[derive(Clone, Debug)]
enum Value {
    Line(String),
    Lines(Vec<String>),
}

struct Preprocessor<'a> {
    options: &'a Options,
    params: HashMap<String, Value>,
    out: Vec<SourceLine>,
    errors: Vec<Diagnostic>,
    random: u64,
    /// Lines handled so far (see [`MAX_LINES`]).
    lines: u32,
    /// Files included so far (see [`MAX_INCLUDES`]).
    includes: u32,
}

/// Where the line being processed came from, and the directory `${_PWD}` names.
#[derive(Clone)]
struct Origin {
    file: Arc<PathBuf>,
    line: u32,
    dir: PathBuf,
}

impl Origin {
    fn location(&self, col: usize) -> Location {
        Location {
            file: self.file.clone(),
            line: self.line,
            col: col as u32 + 1,
        }
    }
}

impl<'a> Preprocessor<'a> {
    fn new(options: &'a Options) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id());
        Self {
            options,
            params: HashMap::new(),
            out: Vec::new(),
            errors: Vec::new(),
            random: seed | 1,
            lines: 0,
            includes: 0,
        }
    }

    /// Processes one file's text: continuation lines are joined, each logical line handled.
    fn file(&mut self, path: &Path, text: &str, depth: u32) {
        let file = Arc::new(path.to_path_buf());
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut pieces: Vec<String> = Vec::new();
        let mut first_line = 0;
        for (i, raw) in text.lines().enumerate() {
            let stripped = strip_comment(raw);
            let continued = stripped.trim_end().ends_with('\\');
            if pieces.is_empty() {
                first_line = i as u32 + 1;
            }
            let piece = if continued {
                let t = stripped.trim_end();
                t[..t.len() - 1].to_string()
            } else {
                stripped
            };
            pieces.push(piece);
            if continued {
                continue;
            }
            let origin = Origin {
                file: file.clone(),
                line: first_line,
                dir: dir.clone(),
            };
            let logical = std::mem::take(&mut pieces);
            self.logical(&origin, logical, depth);
        }
        if !pieces.is_empty() {
            let origin = Origin {
                file,
                line: first_line,
                dir,
            };
            self.logical(&origin, pieces, depth);
        }
    }

    /// A logical line made of continued pieces: a multi-line definition keeps them as lines,
    /// anything else is one line.
    fn logical(&mut self, origin: &Origin, pieces: Vec<String>, depth: u32) {
        if pieces.len() > 1
            && let Some((name, rest)) = definition(&pieces[0])
            && rest.trim().is_empty()
        {
            let lines = pieces[1..].to_vec();
            self.params.insert(name, Value::Lines(lines));
            return;
        }
        self.line(origin, &pieces.join(" "), depth);
    }

    /// One line: include, conditional, definition, generators, then substitution (which may
    /// produce lines that go through all of it again).
    fn line(&mut self, origin: &Origin, text: &str, depth: u32) {
        self.lines = self.lines.saturating_add(1);
        if self.lines >= MAX_LINES {
            if self.lines == MAX_LINES {
                self.errors.push(
                    Diagnostic::new(
                        &origin.location(0),
                        format!("the configuration expands to more than {MAX_LINES} lines"),
                    )
                    .hint("an include or a ~SEQ/~LST probably repeats itself"),
                );
            }
            return;
        }
        if depth > MAX_DEPTH {
            self.errors.push(
                Diagnostic::new(&origin.location(0), "parameter substitution does not end")
                    .hint("a parameter refers to itself, directly or through others"),
            );
            return;
        }
        let trimmed = text.trim_start();
        if trimmed.is_empty() {
            return;
        }
        let indent = text.len() - trimmed.len();
        if let Some(rest) = trimmed.strip_prefix('@') {
            let (negated, rest) = match rest.strip_prefix('^') {
                Some(r) => (true, r),
                None => (false, rest),
            };
            let id_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            let matches = rest[..id_end] == self.options.config_id;
            if matches != negated {
                // Blank out the condition rather than cut it, so columns stay true.
                let kept = &rest[id_end..];
                self.line(origin, &blanked(text, kept), depth);
            }
            return;
        }
        if let Some((name, value)) = definition(trimmed) {
            self.params
                .insert(name, Value::Line(value.trim_end().to_string()));
            return;
        }
        if trimmed.starts_with("~SEQ") || trimmed.starts_with("~LST") {
            match generator(trimmed) {
                Ok(((vars, rows), rest)) => {
                    for row in rows {
                        for (var, value) in vars.iter().zip(row) {
                            self.params.insert(var.clone(), Value::Line(value));
                        }
                        self.line(origin, &blanked(text, rest), depth + 1);
                    }
                }
                Err(message) => self
                    .errors
                    .push(Diagnostic::new(&origin.location(indent), message).hint(
                    "see keepalived.conf(5): ~SEQ(var, start, step, end), ~LST(var, v1, v2, ...)",
                )),
            }
            return;
        }
        if let Some((check, pattern)) = include(trimmed) {
            self.include(origin, check, pattern, indent, depth);
            return;
        }
        let substituted = self.substitute(origin, text);
        if substituted == text {
            self.out.push(SourceLine {
                file: origin.file.clone(),
                line: origin.line,
                text: substituted,
            });
            return;
        }
        for line in substituted.split('\n') {
            self.line(origin, line, depth + 1);
        }
    }

    /// One pass of `${NAME}` / `$NAME` replacement (the caller repeats until nothing changes).
    fn substitute(&mut self, origin: &Origin, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            let (name, args, consumed) = if let Some(inner) = after.strip_prefix('{') {
                match inner.find('}') {
                    Some(end) => {
                        let body = &inner[..end];
                        let (name, args) = body.split_once(' ').unwrap_or((body, ""));
                        (name.to_string(), args.trim().to_string(), end + 2)
                    }
                    None => (String::new(), String::new(), 0),
                }
            } else {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                let followed_ok = after[end..].chars().next().is_none_or(char::is_whitespace);
                if followed_ok {
                    (after[..end].to_string(), String::new(), end)
                } else {
                    (String::new(), String::new(), 0)
                }
            };
            match self.value_of(origin, &name, &args) {
                Some(value) if consumed > 0 => {
                    out.push_str(&value);
                    rest = &after[consumed..];
                }
                _ => {
                    out.push('$');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out
    }

    /// A parameter's value for substitution (multi-line values joined by newlines), or the
    /// built-ins; `None` leaves the reference as written, as keepalived does.
    fn value_of(&mut self, origin: &Origin, name: &str, args: &str) -> Option<String> {
        match name {
            "_PWD" => Some(origin.dir.display().to_string()),
            "_INSTANCE" => Some(self.options.config_id.clone()),
            "_HASH" => Some(HASH.to_string()),
            "_BANG" => Some(BANG.to_string()),
            "_ENV" => Some(std::env::var(args).unwrap_or_default()),
            "_RANDOM" => {
                let mut bounds = args.split_whitespace().map(|a| a.parse::<u64>().ok());
                let min = bounds.next().flatten().unwrap_or(0);
                let max = bounds.next().flatten().unwrap_or(32767).max(min);
                Some((min + self.next_random() % (max - min + 1)).to_string())
            }
            _ if name.is_empty() => None,
            _ => match self.params.get(name)? {
                Value::Line(v) => Some(v.clone()),
                Value::Lines(lines) => Some(lines.join("\n")),
            },
        }
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64: plenty for spreading start-up timers, which is what _RANDOM is for.
        let mut x = self.random;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.random = x;
        x
    }

    /// `include` and its checked variants: glob (with braces) relative to the including
    /// file's directory, each match read as if its lines stood here.
    fn include(&mut self, origin: &Origin, check: Check, pattern: &str, col: usize, depth: u32) {
        let at = origin.location(col);
        if depth >= MAX_DEPTH {
            self.errors.push(
                Diagnostic::new(&at, "includes nest too deeply")
                    .hint("a file probably includes itself"),
            );
            return;
        }
        let pattern = pattern.trim().trim_matches(|c| c == '"' || c == '\'');
        let absolute = if Path::new(pattern).is_absolute() {
            pattern.to_string()
        } else {
            origin.dir.join(pattern).display().to_string()
        };
        let mut files = Vec::new();
        for alternative in expand_braces(&absolute) {
            let matched = glob(&alternative);
            if matched.is_empty()
                && (check.brace && absolute.contains('{')
                    || check.wildcard && has_wildcard(&alternative))
            {
                self.errors.push(Diagnostic::new(
                    &at,
                    format!("`{alternative}` matches no file"),
                ));
            }
            files.extend(matched);
        }
        if files.is_empty() && check.matched {
            self.errors.push(
                Diagnostic::new(&at, format!("include `{pattern}` matches no file"))
                    .hint("use `includer` if the files are optional"),
            );
        }
        for file in files {
            if let Some(root) = &self.options.includes_within
                && !std::fs::canonicalize(&file).is_ok_and(|f| f.starts_with(root))
            {
                self.errors.push(Diagnostic::new(
                    &at,
                    format!("included {} is outside {}", file.display(), root.display()),
                ));
                continue;
            }
            self.includes = self.includes.saturating_add(1);
            if self.includes >= MAX_INCLUDES {
                if self.includes == MAX_INCLUDES {
                    self.errors.push(
                        Diagnostic::new(&at, format!("more than {MAX_INCLUDES} files included"))
                            .hint("a file probably includes itself more than once"),
                    );
                }
                return;
            }
            match std::fs::read_to_string(&file) {
                Ok(text) => self.file(&file, &text, depth + 1),
                Err(e) if check.readable => self.errors.push(Diagnostic::new(
                    &at,
                    format!("cannot read included {}: {e}", file.display()),
                )),
                Err(_) => {}
            }
        }
    }
}

/// `tail` (a suffix of `line`) with everything before it turned into spaces.
fn blanked(line: &str, tail: &str) -> String {
    let head = line.len() - tail.len();
    format!("{}{tail}", " ".repeat(line[..head].chars().count()))
}

/// The `include_check` checks an include variant asks for.
#[derive(Clone, Copy, Debug, Default)]
struct Check {
    readable: bool,
    matched: bool,
    wildcard: bool,
    brace: bool,
}

/// `include FILE` and its variants (`includer`, `includem`, `includew`, `includeb`,
/// `includea`), with the pattern.
fn include(line: &str) -> Option<(Check, &str)> {
    let (word, rest) = line.split_once(char::is_whitespace)?;
    let check = match word {
        "include" => Check::default(),
        "includer" => Check {
            readable: true,
            ..Check::default()
        },
        "includem" => Check {
            matched: true,
            ..Check::default()
        },
        "includew" => Check {
            wildcard: true,
            ..Check::default()
        },
        "includeb" => Check {
            brace: true,
            ..Check::default()
        },
        "includea" => Check {
            readable: true,
            matched: true,
            wildcard: true,
            brace: true,
        },
        _ => return None,
    };
    Some((check, rest))
}

/// `$NAME=value`: only whitespace before the `$`, no space before the `=`.
fn definition(line: &str) -> Option<(String, &str)> {
    let rest = line.trim_start().strip_prefix('$')?;
    let (name, value) = rest.split_once('=')?;
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    valid.then(|| (name.to_string(), value))
}

/// Removes a `#` or `!` comment, respecting quotes (and escapes inside double quotes).
fn strip_comment(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut quote = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, '#' | '!') => break,
            (None, '"' | '\'') => quote = Some(c),
            (Some('"'), '\\') => {
                out.push(c);
                if let Some(next) = chars.next() {
                    out.push(next);
                }
                continue;
            }
            (Some(q), c) if c == q => quote = None,
            _ => {}
        }
        out.push(c);
    }
    out
}

/// Variable names and the rows of values they take, one row per generated line.
type Rows = (Vec<String>, Vec<Vec<String>>);

/// The variables, the rows of values and the rest of the line of `~SEQ...`/`~LST...`
/// generators at the start of `line` (several nest, the first outermost).
fn generator(line: &str) -> Result<(Rows, &str), String> {
    let mut vars = Vec::new();
    let mut rows: Vec<Vec<String>> = vec![Vec::new()];
    let mut rest = line.trim_start();
    loop {
        let (kind, after) = if let Some(a) = rest.strip_prefix("~SEQx(") {
            ("SEQx", a)
        } else if let Some(a) = rest.strip_prefix("~SEQ(") {
            ("SEQ", a)
        } else if let Some(a) = rest.strip_prefix("~LST(") {
            ("LST", a)
        } else {
            break;
        };
        let end = closing_paren(after).ok_or(format!("~{kind}( is never closed"))?;
        let args = split_top_level(&after[..end]);
        let (names, values) = if kind == "LST" {
            lst(&args)?
        } else {
            seq(&args, kind == "SEQx")?
        };
        let mut next = Vec::new();
        for row in &rows {
            for value in &values {
                let mut r = row.clone();
                r.extend(value.iter().cloned());
                next.push(r);
            }
        }
        rows = next;
        vars.extend(names);
        rest = after[end + 1..].trim_start();
    }
    Ok(((vars, rows), rest))
}

fn closing_paren(s: &str) -> Option<usize> {
    let mut depth = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' | '{' => depth += 1,
            '}' => depth -= 1,
            ')' if depth == 0 => return Some(i),
            ')' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// Splits on commas outside `{ }`, trimming each part.
fn split_top_level(s: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut current = String::new();
    for c in s.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(current.trim().to_string());
                current.clear();
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    parts.push(current.trim().to_string());
    parts
}

/// `~SEQ(var, [start, [step,]] end)`.
fn seq(args: &[String], hex: bool) -> Result<Rows, String> {
    let number = |s: &String| -> Result<i64, String> {
        let (negative, digits) = match s.strip_prefix('-') {
            Some(d) => (true, d),
            None => (false, s.as_str()),
        };
        let value = match digits
            .strip_prefix("0x")
            .or_else(|| digits.strip_prefix("0X"))
        {
            Some(h) => i64::from_str_radix(h, 16),
            None => digits.parse(),
        }
        .map_err(|_| format!("`{s}` is not a number"))?;
        Ok(if negative { -value } else { value })
    };
    let (var, nums) = args.split_first().ok_or("~SEQ needs a variable")?;
    let nums: Vec<i64> = nums.iter().map(number).collect::<Result<_, _>>()?;
    let (start, step, end) = match nums.as_slice() {
        [end] => (if *end >= 0 { 1 } else { -1 }, None, *end),
        [start, end] => (*start, None, *end),
        [start, step, end] => (*start, Some(*step), *end),
        _ => {
            return Err(
                "~SEQ takes (var, end), (var, start, end) or (var, start, step, end)".into(),
            );
        }
    };
    let step = step.unwrap_or(if end >= start { 1 } else { -1 });
    if step == 0 || (step > 0 && end < start) || (step < 0 && end > start) {
        return Err(format!("~SEQ from {start} by {step} never reaches {end}"));
    }
    let mut rows = Vec::new();
    let mut v = start;
    while (step > 0 && v <= end) || (step < 0 && v >= end) {
        rows.push(vec![if hex { format!("{v:x}") } else { v.to_string() }]);
        v += step;
        if rows.len() > 1_000_000 {
            return Err("~SEQ produces more than a million lines".into());
        }
    }
    Ok((vec![var.clone()], rows))
}

/// `~LST(var, v1, v2, ...)` or `~LST({A, B}, {a1, b1}, {a2, b2}, ...)`.
fn lst(args: &[String]) -> Result<Rows, String> {
    let (vars, values) = args.split_first().ok_or("~LST needs a variable")?;
    if values.is_empty() {
        return Err("~LST needs at least one value".into());
    }
    let unbrace = |s: &String| -> Vec<String> {
        match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(inner) => inner.split(',').map(|p| p.trim().to_string()).collect(),
            None => vec![s.clone()],
        }
    };
    let names = unbrace(vars);
    let mut rows = Vec::new();
    for value in values {
        let row = unbrace(value);
        if row.len() != names.len() {
            return Err(format!(
                "~LST value `{value}` has {} parts for {} variables",
                row.len(),
                names.len()
            ));
        }
        rows.push(row);
    }
    Ok((names, rows))
}

#[cfg(test)]
mod tests;
