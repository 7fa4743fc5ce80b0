//! The free-text masker never panics on any text, and a password planted
//! after a key, in a URL's user info or in a DSN never comes out, whatever
//! text stands before and after it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, &str, &str, u8)| {
    let (before, after, secret, shape) = input;
    let _ = isp_cluster::hide_secrets_in_text(before);
    let _ = isp_cluster::hide_secrets_in_text(after);
    // A secret the surrounding text cannot hold by chance; and no quotes
    // around it: a masker of words cannot know which quote pairs with
    // which in arbitrary text (`password=" apiToken = "x"`).
    let secret: String = secret.chars().filter(char::is_ascii_alphanumeric).collect();
    let quoted = |text: &str| text.contains(['"', '\'', '`']);
    const FIXED: &str = "password Secret postgres://app:@db:5432/orders root:@tcp(db:3306)/orders apiToken x";
    if secret.len() < 6
        || FIXED.contains(&secret)
        || before.contains(&secret)
        || after.contains(&secret)
        || quoted(before)
        || quoted(after)
    {
        return;
    }
    let planted = match shape % 6 {
        0 => format!("{before} password={secret} {after}"),
        1 => format!("{before} password {secret} {after}"),
        2 => format!("{before} Secret: {secret} {after}"),
        3 => format!("{before} postgres://app:{secret}@db:5432/orders {after}"),
        4 => format!("{before} root:{secret}@tcp(db:3306)/orders {after}"),
        _ => format!("{before} apiToken = \"{secret} x\" {after}"),
    };
    let masked = isp_cluster::hide_secrets_in_text(&planted);
    assert!(
        !masked.contains(&secret),
        "{secret:?} leaks from {planted:?}: {masked:?}"
    );
});
