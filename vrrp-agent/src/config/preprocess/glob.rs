//! File name expansion for `include`: csh-style braces, then glob(3) wildcards.

use std::path::{Path, PathBuf};

/// csh-style brace expansion: `a{b,c{d,e}}f` -> `abf`, `acdf`, `acef`.
pub(super) fn expand_braces(pattern: &str) -> Vec<String> {
    let Some(open) = pattern.find('{') else {
        return vec![pattern.to_string()];
    };
    let mut depth = 0;
    let mut close = None;
    let mut commas = Vec::new();
    for (i, c) in pattern[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    close = Some(open + i);
                    break;
                }
            }
            ',' if depth == 1 => commas.push(open + i),
            _ => {}
        }
    }
    let Some(close) = close else {
        return vec![pattern.to_string()];
    };
    let (head, tail) = (&pattern[..open], &pattern[close + 1..]);
    let mut bounds = vec![open];
    bounds.extend(&commas);
    bounds.push(close);
    let mut out = Vec::new();
    for pair in bounds.windows(2) {
        let alternative = &pattern[pair[0] + 1..pair[1]];
        out.extend(expand_braces(&format!("{head}{alternative}{tail}")));
    }
    out
}

pub(super) fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// glob(3) for `*`, `?` and `[...]` per path component, sorted; hidden files only when the
/// pattern component starts with a dot.
pub(super) fn glob(pattern: &str) -> Vec<PathBuf> {
    let mut paths = vec![if pattern.starts_with('/') {
        PathBuf::from("/")
    } else {
        PathBuf::new()
    }];
    for component in pattern.split('/').filter(|c| !c.is_empty()) {
        let mut next = Vec::new();
        for base in &paths {
            if !has_wildcard(component) {
                let candidate = base.join(component);
                if candidate.exists() {
                    next.push(candidate);
                }
                continue;
            }
            let dir = if base.as_os_str().is_empty() {
                Path::new(".")
            } else {
                base.as_path()
            };
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| !n.starts_with('.') || component.starts_with('.'))
                .filter(|n| wildcard_match(component.as_bytes(), n.as_bytes()))
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|n| base.join(n)));
        }
        paths = next;
    }
    paths.retain(|p| p.is_file());
    paths
}

/// Matches one path component against `*`, `?` and `[...]` (with `!`/`^` negation).
pub(super) fn wildcard_match(pattern: &[u8], name: &[u8]) -> bool {
    match (pattern.first(), name.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            wildcard_match(&pattern[1..], name)
                || (!name.is_empty() && wildcard_match(pattern, &name[1..]))
        }
        (Some(b'?'), Some(_)) => wildcard_match(&pattern[1..], &name[1..]),
        (Some(b'['), Some(&c)) => {
            let Some(end) = pattern.iter().skip(1).position(|&b| b == b']') else {
                return false;
            };
            let class = &pattern[1..=end];
            let (negated, class) = match class.first() {
                Some(b'!' | b'^') => (true, &class[1..]),
                _ => (false, class),
            };
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == b'-' {
                    hit |= class[i] <= c && c <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == c;
                    i += 1;
                }
            }
            hit != negated && wildcard_match(&pattern[end + 2..], &name[1..])
        }
        (Some(&p), Some(&c)) => p == c && wildcard_match(&pattern[1..], &name[1..]),
        _ => false,
    }
}
