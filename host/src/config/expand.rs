//! `${VAR}` references in config values, expanded from the environment.

/// Expands `${VAR}`, `${env:VAR}` (VS Code's spelling) and `${VAR:-default}`,
/// where the default may itself hold references (`${A:-${B}}`, as in a
/// shell); `$$` is a literal `$`. A variable that is unset and has no
/// default is an error: a server started with an empty token fails later,
/// and less clearly.
pub fn expand_vars(input: &str, env: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    expand_nested(input, input, &env, 0)
}

/// How deep defaults may nest: past this it is a mistake, not a config.
const MAX_VAR_NESTING: usize = 8;

fn expand_nested(
    input: &str,
    whole: &str,
    env: &impl Fn(&str) -> Option<String>,
    depth: usize,
) -> Result<String, String> {
    if depth > MAX_VAR_NESTING {
        return Err(format!(
            "defaults nest more than {MAX_VAR_NESTING} deep in {whole:?}"
        ));
    }
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end =
                closing_brace(body).ok_or_else(|| format!("unterminated \"${{\" in {whole:?}"))?;
            let expr = &body[..end];
            let expr = expr.strip_prefix("env:").unwrap_or(expr);
            let (name, default) = match expr.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (expr, None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("\"${{{expr}}}\" is not a valid variable reference"));
            }
            match (env(name), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(&expand_nested(d, whole, env, depth + 1)?),
                (None, None) => {
                    return Err(format!("environment variable {name} is not set"));
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Where the `}` closing a `${` is in `body` (the text after the `${`),
/// counting the `${ … }` pairs nested inside it.
fn closing_brace(body: &str) -> Option<usize> {
    let bytes = body.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'$') => i += 1,
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}
