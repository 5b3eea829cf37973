//! Properties of the `Authorization` header, read on every request: Basic credentials
//! written by a client read back exactly (any UTF-8, `:` allowed in the password), overlong
//! ones are refused before anything is hashed, and any header at all — garbage, a near-valid
//! Basic header, a tampered bearer token, an API-token look-alike — identifies the caller or
//! is refused with a 401/429, never a panic or a 503; a tampered token never verifies as
//! anything but what was issued.

use std::sync::LazyLock;

use base64::Engine as _;
use proptest::prelude::*;

use super::*;
use crate::test_support::near_valid;

fn encode(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// A username without `:` of at most 256 bytes, a password of at most 1024.
fn credentials() -> impl Strategy<Value = (String, String)> {
    ("[^:]{0,64}", ".{0,256}")
}

fn basic_header() -> impl Strategy<Value = String> {
    let scheme = prop::sample::select(vec!["Basic", "basic", "BASIC", "bAsIc"]);
    let space = prop::sample::select(vec!["", " ", "  ", "\t"]);
    (scheme, space.clone(), space, credentials()).prop_map(
        |(scheme, lead, trail, (user, password))| {
            format!(
                "{lead}{scheme} {}{trail}",
                encode(&format!("{user}:{password}"))
            )
        },
    )
}

/// An access gate with no identity source, API tokens and bearer tokens on a temporary
/// store, limits high enough that refusals come from the header, not from earlier cases;
/// and a token it issued.
struct Fixture {
    runtime: tokio::runtime::Runtime,
    access: Access,
    tokens: Arc<TokenService>,
    token: String,
    _dir: tempfile::TempDir,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (dir, storage) = runtime.block_on(crate::test_support::temporary_storage());
    let config = oci_storage_config::TokenConfig {
        enabled: true,
        ..Default::default()
    };
    let tokens = Arc::new(
        runtime
            .block_on(TokenService::load(config, storage.as_ref()))
            .unwrap(),
    );
    let grant = token::Grant {
        kind: "repository".into(),
        name: "a/b".into(),
        actions: vec!["pull".into()],
    };
    let who = Identity {
        username: "alice".into(),
        groups: Vec::new(),
    };
    let token = tokens.issue(Some(&who), vec![grant]).unwrap().token;
    let limits = oci_storage_config::LoginLimits {
        per_address: u32::MAX,
        per_user: u32::MAX,
        ..Default::default()
    };
    let access = Access::new(
        Vec::new(),
        Arc::new(ApiTokens::new(storage)),
        Some(tokens.clone()),
        Policy::new(&oci_storage_config::AuthConfig::default()).unwrap(),
        LoginLimiter::new(&limits),
        HashGate::new(2, 64),
    );
    Fixture {
        runtime,
        access,
        tokens,
        token,
        _dir: dir,
    }
});

fn any_header() -> impl Strategy<Value = String> {
    let token = || Just(FIXTURE.token.clone());
    prop_oneof![
        any::<String>(),
        near_valid(basic_header()),
        near_valid(token().prop_map(|t| format!("Bearer {t}"))),
        near_valid(near_valid(token())).prop_map(|t| format!("bearer {t}")),
        ("[^:]{0,8}", "ocis_[0-9a-fA-F./]{14,18}_[a-z0-9]{0,40}").prop_map(
            |(user, password)| format!("Basic {}", encode(&format!("{user}:{password}")))
        ),
        "(Basic|Bearer|Digest|) ?[A-Za-z0-9+/=_.-]{0,40}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn basic_credentials_read_back_as_written(
        (user, password) in credentials(),
        scheme in prop::sample::select(vec!["Basic", "basic", "BASIC"]),
    ) {
        let header = format!("{scheme} {}", encode(&format!("{user}:{password}")));
        let c = parse_basic(&header).unwrap();
        prop_assert_eq!(c.username, user);
        prop_assert_eq!(c.password.expose(), password);
    }

    #[test]
    fn overlong_credentials_are_refused(
        user in "[a-z]{257,300}",
        password in "[a-z]{1025,1100}",
        which in any::<bool>(),
    ) {
        let text = if which { format!("{user}:x") } else { format!("x:{password}") };
        let header = format!("Basic {}", encode(&text));
        prop_assert!(parse_basic(&header).is_none());
    }

    #[test]
    fn accepted_basic_headers_are_within_bounds(
        h in prop_oneof![any::<String>(), basic_header(), near_valid(basic_header())],
    ) {
        if let Some(c) = parse_basic(&h) {
            prop_assert!(c.username.len() <= MAX_USERNAME && !c.username.contains(':'));
            prop_assert!(c.password.expose().len() <= MAX_PASSWORD);
        }
    }

    /// Whatever the header, the caller is identified or refused as the client's problem
    /// (401 or 429); 503 is only for a failing identity source, and there is none here.
    #[test]
    fn any_header_identifies_or_is_refused_with_a_4xx(h in any_header()) {
        let f = &*FIXTURE;
        let result = f.runtime.block_on(f.access.identify(Some(&h), None));
        prop_assert!(
            matches!(result, Ok(_) | Err(Denial::Unauthenticated | Denial::TooManyRequests(_))),
            "{:?} → {:?}", h, result
        );
    }

    /// A changed token either fails to verify or carries exactly the issued claims.
    #[test]
    fn a_tampered_token_never_verifies_as_something_else(
        t in near_valid(Just(FIXTURE.token.clone())),
    ) {
        let f = &*FIXTURE;
        if let Some(claims) = f.tokens.verify(&t) {
            let issued = f.tokens.verify(&f.token).unwrap();
            prop_assert_eq!(
                (claims.sub, claims.access, claims.jti),
                (issued.sub, issued.access, issued.jti)
            );
        }
    }
}
