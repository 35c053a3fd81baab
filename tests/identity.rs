//! `ringside identity` and the identity check of `--check`, through the
//! built binary: mint a CA and two identities into a temporary directory,
//! then hand them to `ringside --check` as a user would.

mod support;

use std::process::{Command, Output};

use support::{TempDir, TempPath, BIN};

const WEB: &str = "web.default.serviceaccount.identity.linkerd.cluster.local";
const DB: &str = "db.default.serviceaccount.identity.linkerd.cluster.local";
const WEB_SPIFFE: &str = "spiffe://cluster.local/ns/default/sa/web";

fn ringside(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(BIN);
    command.args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A CA in `ca/`, the web identity (with its SPIFFE ID) in `web/` and the
/// db identity in `db/`.
fn minted() -> TempDir {
    let dir = TempDir::new();
    let ca = dir.join("ca");
    let steps: [&[&str]; 3] = [
        &["identity", "ca", "--out", &ca],
        &[
            "identity",
            "issue",
            "--ca",
            &ca,
            "--name",
            WEB,
            "--spiffe-id",
            WEB_SPIFFE,
            "--out",
            &dir.join("web"),
        ],
        &[
            "identity",
            "issue",
            "--ca",
            &ca,
            "--name",
            DB,
            "--days",
            "2",
            "--out",
            &dir.join("db"),
        ],
    ];
    for step in steps {
        let output = ringside(step, &[]);
        assert!(output.status.success(), "{step:?}: {}", stderr(&output));
    }
    dir
}

#[test]
fn minted_identities_pass_the_check_from_flags_env_and_file() {
    let dir = minted();
    let flags = [
        "--identity-cert",
        &dir.join("web/cert.pem"),
        "--identity-key",
        &dir.join("web/key.pem"),
        "--identity-trust-anchors",
        &dir.join("web/trust-anchors.pem"),
        "--identity-name",
        WEB,
        "--identity-spiffe-id",
        WEB_SPIFFE,
        "--check",
    ];
    let output = ringside(&flags, &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout.contains(&format!("\nname = \"{WEB}\"\n")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("# identity {WEB}: certificate valid until ")),
        "{stdout}"
    );

    let env = [
        ("RINGSIDE_IDENTITY_CERT", dir.join("db/cert.pem")),
        ("RINGSIDE_IDENTITY_KEY", dir.join("db/key.pem")),
        ("RINGSIDE_IDENTITY_TRUST_ANCHORS", dir.join("ca/ca.pem")),
        ("RINGSIDE_IDENTITY_NAME", DB.to_string()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let output = ringside(&["--check"], &env);
    assert!(output.status.success(), "{}", stderr(&output));

    let file = TempPath::holding(format!(
        "[identity]\ncert = \"{}\"\nkey = \"{}\"\ntrust_anchors = \"{}\"\nname = \"{DB}\"\n",
        dir.join("db/cert.pem"),
        dir.join("db/key.pem"),
        dir.join("db/trust-anchors.pem"),
    ));
    let output = ringside(&["--config", file.as_str(), "--check"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn a_mismatched_key_fails_the_check_in_one_line_naming_the_file() {
    let dir = minted();
    let (cert, key) = (dir.join("web/cert.pem"), dir.join("db/key.pem"));
    let flags = [
        "--identity-cert",
        &cert,
        "--identity-key",
        &key,
        "--identity-trust-anchors",
        &dir.join("ca/ca.pem"),
        "--identity-name",
        WEB,
        "--check",
    ];
    let output = ringside(&flags, &[]);
    assert_eq!(output.status.code(), Some(64));
    assert_eq!(
        stderr(&output),
        format!(
            "ringside: bad configuration: {key}: the private key does not match the certificate in {cert}\n"
        )
    );
    assert!(output.stdout.is_empty());
}

#[test]
fn a_certificate_for_another_name_or_a_missing_key_fails_the_check() {
    let dir = minted();
    let flags = [
        "--identity-cert",
        &dir.join("db/cert.pem"),
        "--identity-key",
        &dir.join("db/key.pem"),
        "--identity-trust-anchors",
        &dir.join("ca/ca.pem"),
        "--identity-name",
        WEB,
        "--check",
    ];
    let output = ringside(&flags, &[]);
    assert_eq!(output.status.code(), Some(64));
    let message = stderr(&output);
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(
        message.contains("do not hold the identity name"),
        "{message}"
    );

    let output = ringside(&["--identity-name", WEB, "--check"], &[]);
    assert_eq!(output.status.code(), Some(64));
    assert!(
        stderr(&output).starts_with("ringside: bad configuration: identity.cert: required"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn minting_never_overwrites_a_file() {
    let dir = minted();
    let output = ringside(&["identity", "ca", "--out", &dir.join("ca")], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        format!(
            "ringside: {}: already exists; ringside identity never overwrites a file\n",
            dir.join("ca/ca.pem")
        )
    );
}

#[test]
fn an_inbound_policy_without_an_identity_fails_the_check_naming_its_key() {
    let file = TempPath::holding(
        "[inbound]\nlisten = \"127.0.0.1:0\"\n\
         [[inbound.authorize_port]]\nports = [8080]\nauthorize = \"deny\"\n",
    );
    let output = ringside(&["--config", file.as_str(), "--check"], &[]);
    assert_eq!(output.status.code(), Some(64));
    let message = stderr(&output);
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(
        message.starts_with("ringside: bad configuration: inbound.authorize_port[0].authorize: \"deny\" cannot be enforced without an [identity]"),
        "{message}"
    );
    let output = ringside(
        &["--inbound-authorize", "all-authenticated", "--check"],
        &[],
    );
    assert_eq!(output.status.code(), Some(64));
    assert!(
        stderr(&output).starts_with("ringside: bad configuration: --inbound-authorize: "),
        "{}",
        stderr(&output)
    );

    // With an identity the same policy is taken, and printed back.
    let dir = minted();
    let flags = [
        "--config",
        file.as_str(),
        "--identity-cert",
        &dir.join("web/cert.pem"),
        "--identity-key",
        &dir.join("web/key.pem"),
        "--identity-trust-anchors",
        &dir.join("web/trust-anchors.pem"),
        "--identity-name",
        WEB,
        "--check",
    ];
    let output = ringside(&flags, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        printed.contains("[[inbound.authorize_port]]\nports = [8080]\nauthorize = \"deny\""),
        "{printed}"
    );
}
