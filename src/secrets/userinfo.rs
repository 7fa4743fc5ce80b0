//! The user info of a URL or a DSN inside a word of free text:
//! `postgres://app:Hunter2@db:5432/orders` → `postgres://app:***@db:5432/orders`,
//! `root:pw@tcp(db:3306)/orders` (Go's MySQL DSN) → `root:***@tcp(db:3306)/orders`.
//!
//! Passwords are written raw in error texts more often than encoded, so the
//! user info runs to the last `@` of the URL, not to the first `/`
//! (`u:pa/ss@db` hides `pa/ss`); what follows `host:port/` (a path) is not
//! taken for a password.

/// The characters that end a DSN's prefix before its user info
/// (`dsn=root:pw@…`, `("root:pw@…`).
const BEFORE_DSN: [char; 8] = ['=', '"', '\'', '(', ',', ';', '<', '['];

/// Appends `word` to `out` with the password of each URL or DSN in it
/// replaced by `***` (a URL's user info without a password, which may be a
/// token, is replaced whole: `https://***@host`).
pub(super) fn mask_user_info(word: &str, out: &mut String) {
    if word.contains("://") {
        let mut rest = word;
        // Each URL runs from its `://` to the next one.
        while let Some(at) = rest.find("://") {
            let authority_start = at + "://".len();
            out.push_str(&rest[..authority_start]);
            rest = &rest[authority_start..];
            let end = rest.find("://").unwrap_or(rest.len());
            let url = &rest[..end];
            mask_one(url, true, out);
            rest = &rest[end..];
        }
        out.push_str(rest);
        return;
    }
    // A DSN without a scheme: its user info must have a password.
    let Some(at) = word.rfind('@') else {
        out.push_str(word);
        return;
    };
    let start = word[..at].rfind(BEFORE_DSN).map_or(0, |i| i + 1);
    out.push_str(&word[..start]);
    mask_one(&word[start..], false, out);
}

/// Appends `url` (what follows `://`, or a DSN) with its user info masked;
/// `bare_user`: a user info without `:` is masked too.
fn mask_one(url: &str, bare_user: bool, out: &mut String) {
    let Some(at) = url.rfind('@') else {
        out.push_str(url);
        return;
    };
    let info = &url[..at];
    let spans_a_path = info.contains(['/', '?', '#']);
    match info.find(':') {
        // `host:8080/path?mail=a@b`: a port and a path, not a password.
        Some(colon) if spans_a_path && is_port(&info[colon + 1..]) => out.push_str(url),
        Some(colon) => {
            out.push_str(&info[..=colon]);
            out.push_str("***");
            out.push_str(&url[at..]);
        }
        None if bare_user && !info.is_empty() && !spans_a_path => {
            out.push_str("***");
            out.push_str(&url[at..]);
        }
        None => out.push_str(url),
    }
}

/// Whether `after_colon` starts with a port: digits up to a `/`, `?` or `#`.
fn is_port(after_colon: &str) -> bool {
    let end = after_colon
        .find(['/', '?', '#'])
        .unwrap_or(after_colon.len());
    end > 0 && after_colon[..end].bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(word: &str) -> String {
        let mut out = String::new();
        mask_user_info(word, &mut out);
        out
    }

    #[test]
    fn a_urls_password_is_masked_and_its_user_kept() {
        assert_eq!(
            masked("postgres://app:Hunter2@db:5432/orders"),
            "postgres://app:***@db:5432/orders"
        );
        assert_eq!(masked("amqp://u:p@ss@mq/"), "amqp://u:***@mq/");
        assert_eq!(masked("redis://:pw@cache:6379"), "redis://:***@cache:6379");
        assert_eq!(masked("postgres://u:pa/ss@db/x"), "postgres://u:***@db/x");
        assert_eq!(
            masked("a=pg://u:p1@h,b=pg://v:p2@k"),
            "a=pg://u:***@h,b=pg://v:***@k"
        );
    }

    #[test]
    fn a_user_info_without_password_may_be_a_token() {
        assert_eq!(
            masked("https://ghp_abc@github.com/org/repo"),
            "https://***@github.com/org/repo"
        );
    }

    #[test]
    fn a_dsn_without_scheme_is_masked_when_it_has_a_password() {
        assert_eq!(
            masked("root:pw@tcp(db:3306)/orders"),
            "root:***@tcp(db:3306)/orders"
        );
        assert_eq!(
            masked("dsn=root:pw@tcp(db:3306)/x"),
            "dsn=root:***@tcp(db:3306)/x"
        );
        assert_eq!(masked("bob@example.com"), "bob@example.com");
    }

    #[test]
    fn what_is_no_user_info_is_kept() {
        for word in [
            "http://db:5432/orders",
            "http://api:8080/users?email=bob@x.com",
            "https://host/path?mail=a@b",
            "plain",
            "a@",
            "://@",
            "@",
        ] {
            assert_eq!(masked(word), word);
        }
    }
}
