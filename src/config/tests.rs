//! Tests of flags, file and environment, and of every validation.

use std::path::PathBuf;

use clap::Parser;

use super::build::default_name;
use super::*;
use crate::core::membership::identity::NAME_BYTES_MAX;
use crate::core::replication::{Consistency, Levels};
use crate::core::ring::VNODES_MAX;
use crate::runtime::tls::ClientAuth;
use crate::runtime::ServerConfig;

#[test]
fn clock_drift_and_timer_flags_are_bounded() {
    let cfg = |o: Options| o.server_config(1);
    assert_eq!(cfg(Options::default()).unwrap().node.clock_drift_max_ms, 60_000);
    let file = Options::from_toml("max-clock-drift-ms = 5000").unwrap();
    assert_eq!(cfg(file).unwrap().node.clock_drift_max_ms, 5_000);
    assert!(cfg(Options { max_clock_drift_ms: Some(0), ..Options::default() }).is_err());
    let huge = Some(u64::MAX);
    for bad in [
        Options { max_clock_drift_ms: huge, ..Options::default() },
        Options { request_timeout_ms: huge, ..Options::default() },
        Options { anti_entropy_period_ms: huge, ..Options::default() },
    ] {
        let err = cfg(bad).expect_err("refused").to_string();
        assert!(err.contains("at most 86400000"), "{err}");
    }
}

#[test]
fn a_clock_offset_needs_the_debug_command() {
    let cfg = |debug: Option<&str>| Options {
        enable_debug_command: debug.map(String::from),
        debug_clock_offset_ms: Some(-1_500),
        ..Options::default()
    };
    let refused = cfg(None).server_config(1).unwrap_err().to_string();
    assert!(refused.contains("test-only"), "{refused}");
    assert_eq!(cfg(Some("local")).server_config(1).unwrap().clock_offset_ms, -1_500);
    assert_eq!(Options::default().server_config(1).unwrap().clock_offset_ms, 0);
}

#[test]
fn the_debug_command_is_off_unless_enabled() {
    use crate::runtime::DebugCommand;
    let cfg = |v: Option<&str>| Options { enable_debug_command: v.map(String::from), ..Options::default() };
    assert_eq!(cfg(None).server_config(1).unwrap().enable_debug_command, DebugCommand::No);
    assert_eq!(cfg(Some("YES")).server_config(1).unwrap().enable_debug_command, DebugCommand::Yes);
    assert_eq!(cfg(Some("local")).server_config(1).unwrap().enable_debug_command, DebugCommand::Local);
    assert!(cfg(Some("maybe")).server_config(1).is_err());
}

#[test]
fn sizes_parse_like_redis() {
    assert_eq!(parse_bytes("100").unwrap(), 100);
    assert_eq!(parse_bytes("1k").unwrap(), 1000);
    assert_eq!(parse_bytes("1kb").unwrap(), 1024);
    assert_eq!(parse_bytes("100mb").unwrap(), 100 << 20);
    assert_eq!(parse_bytes("1GB").unwrap(), 1 << 30);
    assert!(parse_bytes("12xb").is_err());
    assert!(parse_bytes("mb").is_err());
    assert!(parse_bytes("99999999999999999gb").is_err());
}

#[test]
fn flags_win_over_file_and_defaults_fill_the_rest() {
    let file = Options::from_toml("listen = \"127.0.0.1:7000\"\nmaxmemory = \"1mb\"\nname = \"f\"").unwrap();
    let cli = Options { name: Some("cli".into()), ..Options::default() };
    let cfg = cli.or(file).server_config(1).unwrap();
    assert_eq!(cfg.listen.unwrap().port(), 7000);
    assert_eq!(cfg.node.name, "cli");
    assert_eq!(cfg.node.maxmemory_bytes, Some(1 << 20));
    assert_eq!(cfg.maxclients, 10_000);
}

#[test]
fn unknown_file_keys_and_bad_values_are_errors() {
    assert!(Options::from_toml("listn = \"x\"").is_err());
    let bad = Options { maxmemory: Some("lots".into()), ..Options::default() };
    assert!(bad.server_config(1).is_err());
    let bad = Options { maxmemory_policy: Some("lfu".into()), ..Options::default() };
    assert!(bad.server_config(1).is_err());
    let bad = Options { gossip_loss_percent: Some(101), ..Options::default() };
    assert!(bad.server_config(1).is_err());
}

#[test]
fn replication_settings_map_to_the_node() {
    let node = |o: Options| o.server_config(1).map(|c| c.node);
    let d = node(Options::default()).unwrap();
    assert_eq!((d.replicas, d.levels), (3, Levels::default()));
    assert_eq!((d.tombstone_grace_ms, d.hint_age_max_ms), (300_000, 240_000));
    assert_eq!(d.vnodes, crate::core::ring::DEFAULT_VNODES);
    let file = "replicas = 5\nread-consistency = \"quorum\"\nwrite-consistency = \"ALL\"\n\
                request-timeout-ms = 250\ntombstone-grace = 60\nhints-max = 7\nhint-max-age = 60\n\
                anti-entropy-period-ms = 900\nvnodes = 64";
    let n = node(Options::from_toml(file).unwrap()).unwrap();
    assert_eq!((n.replicas, n.levels.read, n.levels.write), (5, Consistency::Quorum, Consistency::All));
    assert_eq!((n.request_timeout_ms, n.tombstone_grace_ms, n.hint_age_max_ms), (250, 60_000, 60_000));
    assert_eq!((n.hints_max, n.anti_entropy_period_ms, n.vnodes), (7, 900, 64));
}

#[test]
fn wrong_replication_settings_say_what_is_wrong() {
    let err = |o: Options| format!("{:#}", o.server_config(1).unwrap_err());
    assert!(err(Options { replicas: Some(0), ..Options::default() }).contains("--replicas"));
    let e = err(Options { read_consistency: Some("two".into()), ..Options::default() });
    assert!(e.contains("--read-consistency") && e.contains("unknown consistency level 'two'"), "{e}");
    assert!(err(Options { write_consistency: Some("".into()), ..Options::default() }).contains("--write-"));
    assert!(err(Options { request_timeout_ms: Some(0), ..Options::default() }).contains("--request-timeout"));
    assert!(err(Options { anti_entropy_period_ms: Some(0), ..Options::default() }).contains("anti-entropy"));
    assert!(err(Options { vnodes: Some(0), ..Options::default() }).contains("--vnodes"));
    assert!(err(Options { vnodes: Some(VNODES_MAX + 1), ..Options::default() }).contains("--vnodes"));
    assert!(err(Options { tombstone_grace: Some(0), ..Options::default() }).contains("--tombstone-grace"));
    let e = err(Options { tombstone_grace: Some(100), ..Options::default() });
    assert!(e.contains("--hint-max-age 240s exceeds --tombstone-grace 100s"), "{e}");
    let ok = Options { tombstone_grace: Some(100), hint_max_age: Some(100), ..Options::default() };
    assert!(ok.server_config(1).is_ok());
    assert!(err(Options { hint_max_age: Some(u64::MAX), ..Options::default() }).contains("too large"));
}

#[test]
fn a_wildcard_cluster_address_needs_an_advertised_one() {
    let wildcard = Options { cluster: Some("0.0.0.0:7946".into()), ..Options::default() };
    let error = wildcard.clone().server_config(1).unwrap_err().to_string();
    assert!(error.contains("--advertise"), "{error}");
    let advertise = Some("10.1.2.3:7946".parse().unwrap());
    let secret = Some("0123456789abcdef".into());
    let exposed = Options { advertise, cluster_secret: secret, ..wildcard.clone() };
    let cluster = exposed.server_config(1).unwrap().cluster.unwrap();
    assert_eq!(cluster.advertise, advertise);
    let bad = Options { advertise: Some("0.0.0.0:7946".parse().unwrap()), ..wildcard };
    assert!(bad.server_config(1).is_err());
    let v6 = Options { cluster: Some("[::]:7946".into()), ..Options::default() };
    assert!(v6.server_config(1).is_err());
}

#[test]
fn the_default_name_is_the_host_and_port_and_fits_an_identity() {
    assert_eq!(default_name("web-3", 6380), "web-3-6380");
    assert_eq!(default_name("", 6380), "shoal-6380");
    let long = "h".repeat(200);
    let name = default_name(&long, 6380);
    assert_eq!(name.len(), NAME_BYTES_MAX);
    assert!(name.ends_with("-6380"));
    let wide = "é".repeat(40); // two bytes each: the cut must fall on a character boundary
    assert!(default_name(&wide, 1).len() <= NAME_BYTES_MAX);
    let node = Options::default().server_config(1).unwrap().node;
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    assert_eq!(node.name, default_name(&host, 6380));
}

#[test]
fn secrets_come_inline_or_from_a_file_and_never_show() {
    let dir = std::env::temp_dir().join(format!("shoal-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pass_file = dir.join("pass");
    std::fs::write(&pass_file, "from-file-pass\n").unwrap();
    let secret_file = dir.join("secret");
    std::fs::write(&secret_file, "a-cluster-secret-from-a-file\r\n").unwrap();
    let o = Options {
        requirepass_file: Some(pass_file.clone()),
        cluster_secret_file: Some(secret_file),
        ..Options::default()
    };
    let cfg = o.server_config(1).unwrap();
    assert_eq!(cfg.requirepass.as_ref().unwrap().expose(), b"from-file-pass");
    let cluster = cfg.cluster.as_ref().unwrap();
    assert_eq!(cluster.secret.as_ref().unwrap().expose(), b"a-cluster-secret-from-a-file");
    let shown = format!("{o:?} {cfg:?} {cfg:#?}");
    assert!(!shown.contains("from-file-pass") && !shown.contains("a-cluster-secret"), "{shown}");
    let inline = Options {
        requirepass: Some("inline-pass".into()),
        cluster_secret: Some("inline-cluster-secret".into()),
        ..Options::default()
    };
    let shown = format!("{inline:?} {:?}", inline.server_config(1).unwrap());
    assert!(!shown.contains("inline-pass") && !shown.contains("inline-cluster-secret"), "{shown}");
    let both = Options { requirepass: Some("x".into()), requirepass_file: Some(pass_file), ..Options::default() };
    assert!(format!("{:#}", both.server_config(1).unwrap_err()).contains("not both"));
    let empty = Options { requirepass: Some("".into()), ..Options::default() };
    assert!(empty.server_config(1).unwrap().requirepass.is_none());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn help_never_prints_secret_values_from_the_environment() {
    use clap::CommandFactory;
    let mut cmd = Options::command();
    for arg in ["requirepass", "cluster_secret"] {
        let a = cmd.get_arguments().find(|a| a.get_id() == arg).unwrap();
        assert!(a.is_hide_env_values_set(), "--{arg} must hide its environment value");
    }
    let help = cmd.render_long_help().to_string();
    assert!(help.contains("SHOAL_REQUIREPASS") && help.contains("SHOAL_CLUSTER_SECRET"), "{help}");
}

#[test]
fn tls_listener_settings() {
    let tls = |o: Options| o.server_config(1).map(|c| (c.listen, c.tls));
    let err = |o: Options| format!("{:#}", o.server_config(1).unwrap_err());
    let files = Options {
        tls_listen: Some("127.0.0.1:6390".parse().unwrap()),
        tls_cert_file: Some("c.pem".into()),
        tls_key_file: Some("k.pem".into()),
        ..Options::default()
    };
    let e = err(files.clone());
    assert!(e.contains("--tls-ca-cert-file") && e.contains("default is yes"), "{e}");
    let no_auth = Options { tls_auth_clients: Some("no".into()), ..files.clone() };
    let (listen, t) = tls(no_auth.clone()).unwrap();
    let t = t.unwrap();
    assert_eq!(
        (listen, t.auth_clients, t.handshake_timeout_ms),
        (ServerConfig::default().listen, ClientAuth::No, 10_000)
    );
    let with_ca = Options { tls_ca_cert_file: Some("ca.pem".into()), listen: Some("off".into()), ..files.clone() };
    let (listen, t) = tls(with_ca).unwrap();
    assert_eq!((listen, t.unwrap().auth_clients), (None, ClientAuth::Yes));
    assert!(err(Options { tls_auth_clients: Some("sometimes".into()), ..no_auth.clone() }).contains("--tls-auth"));
    assert!(err(Options { tls_handshake_timeout_ms: Some(0), ..no_auth }).contains("handshake"));
    assert!(err(Options { tls_key_file: None, ..files }).contains("--tls-key-file"));
    assert!(err(Options { tls_cert_file: Some("c.pem".into()), ..Options::default() }).contains("--tls-listen"));
    assert!(err(Options { listen: Some("off".into()), ..Options::default() }).contains("no client listener"));
    assert!(err(Options { listen: Some("nowhere".into()), ..Options::default() }).contains("--listen"));
}

#[test]
fn tls_cluster_settings() {
    let err = |o: Options| format!("{:#}", o.server_config(1).unwrap_err());
    let on = Options { tls_cluster: Some(true), ..Options::default() };
    let e = err(on.clone());
    assert!(e.contains("--tls-cluster needs") && e.contains("missing: --tls-cert-file, --tls-key-file, --tls-ca"));
    let files = Options {
        tls_cert_file: Some("node.pem".into()),
        tls_key_file: Some("node.key".into()),
        tls_ca_cert_file: Some("ca.pem".into()),
        ..Options::default()
    };
    let e = err(Options { tls_ca_cert_file: None, ..Options { tls_cluster: Some(true), ..files.clone() } });
    assert!(e.ends_with("missing: --tls-ca-cert-file"), "{e}");
    // The certificate files with --tls-cluster alone (no client TLS listener) are accepted.
    let cfg = Options { tls_cluster: Some(true), ..files.clone() }.server_config(1).unwrap();
    assert!(cfg.tls.is_none(), "no client TLS listener");
    let tls = cfg.cluster.unwrap().tls.expect("peer TLS");
    assert_eq!((tls.identity.cert_file, tls.identity.key_file), ("node.pem".into(), "node.key".into()));
    assert_eq!(tls.ca_cert_file, PathBuf::from("ca.pem"));
    // Without it the same files are refused: nothing would use them.
    assert!(err(files.clone()).contains("--tls-listen ADDR or --tls-cluster"));
    assert!(err(Options { tls_cluster: Some(false), ..files.clone() }).contains("nothing uses them"));
    // A flag alone means true; the TOML key has the flag's name.
    let parsed = Options::try_parse_from(["shoal", "--tls-cluster", "--tls-cert-file", "n.pem"]).unwrap();
    assert_eq!((parsed.tls_cluster, parsed.tls_cert_file), (Some(true), Some("n.pem".into())));
    let file = Options::from_toml(
        "tls-cluster = true\ntls-cert-file = \"n.pem\"\ntls-key-file = \"n.key\"\n\
                                   tls-ca-cert-file = \"ca.pem\"",
    )
    .unwrap();
    assert!(file.server_config(1).unwrap().cluster.unwrap().tls.is_some());
    // A standalone node has no peer links to protect.
    assert!(err(Options { cluster: Some("off".into()), ..on.clone() }).contains("--cluster off"));
    // TLS does not open a non-loopback cluster address without a secret: gossip would be unauthenticated.
    let exposed = Options { cluster: Some("10.1.2.3:7946".into()), tls_cluster: Some(true), ..files };
    assert!(err(exposed.clone()).contains("--cluster-secret"));
    let keyed = Options { cluster_secret: Some("0123456789abcdef".into()), ..exposed };
    assert!(keyed.server_config(1).unwrap().cluster.unwrap().tls.is_some());
}

#[test]
fn client_limits() {
    let d = Options::default().server_config(1).unwrap();
    assert_eq!((d.client_query_buffer_bytes_max, d.client_output_buffer_bytes_max), (1 << 30, 1 << 30));
    assert_eq!(d.client_idle_timeout_ms, 0);
    let file = "client-query-buffer-limit = \"2mb\"\nclient-output-buffer-limit = \"0\"\ntimeout = 30\n\
                proto-max-bulk-len = \"1mb\"";
    let c = Options::from_toml(file).unwrap().server_config(1).unwrap();
    assert_eq!((c.client_query_buffer_bytes_max, c.client_output_buffer_bytes_max), (2 << 20, 0));
    assert_eq!(c.client_idle_timeout_ms, 30_000);
    let err = |o: Options| format!("{:#}", o.server_config(1).unwrap_err());
    let small = Options { client_query_buffer_limit: Some("100kb".into()), ..Options::default() };
    assert!(err(small).contains("at least 1mb"));
    let below_bulk = Options { client_query_buffer_limit: Some("64mb".into()), ..Options::default() };
    assert!(err(below_bulk).contains("exceeds --client-query-buffer-limit"));
    assert!(err(Options { timeout: Some(u64::MAX), ..Options::default() }).contains("too large"));
}

#[test]
fn a_cluster_address_beyond_loopback_needs_a_secret_or_the_insecure_opt_out() {
    let err = |o: Options| format!("{:#}", o.server_config(1).unwrap_err());
    let exposed = Options { cluster: Some("10.1.2.3:7946".into()), ..Options::default() };
    let e = err(exposed.clone());
    assert!(e.contains("--cluster-secret") && e.contains("--cluster-insecure"), "{e}");
    assert!(e.contains("10.1.2.3:7946") && e.contains("not loopback"), "{e}");
    // A wildcard bind is open to every interface even when it announces loopback.
    let wildcard = Options {
        cluster: Some("0.0.0.0:7946".into()),
        advertise: Some("127.0.0.1:7946".parse().unwrap()),
        ..Options::default()
    };
    assert!(err(wildcard).contains("--cluster-secret"));
    // A loopback bind announcing another address is reached there too.
    let announced = Options { advertise: Some("192.0.2.7:7946".parse().unwrap()), ..Options::default() };
    assert!(err(announced).contains("192.0.2.7:7946"));
    let secret = Some("0123456789abcdef".into());
    let keyed = Options { cluster_secret: secret, ..exposed.clone() }.server_config(1).unwrap();
    assert!(!keyed.cluster.unwrap().insecure);
    let opted_out = Options { cluster_insecure: Some(true), ..exposed.clone() }.server_config(1).unwrap();
    assert!(opted_out.cluster.unwrap().insecure);
    let file = Options::from_toml("cluster = \"10.1.2.3:7946\"\ncluster-insecure = true").unwrap();
    assert!(file.server_config(1).is_ok(), "the TOML key has the flag's name");
    assert!(Options { cluster_insecure: Some(false), ..exposed }.server_config(1).is_err());
    // The flag alone means true, as the other boolean switches of Redis-like servers do.
    let parsed = Options::try_parse_from(["shoal", "--cluster", "10.1.2.3:7946", "--cluster-insecure"]).unwrap();
    assert_eq!(parsed.cluster_insecure, Some(true));
    assert!(parsed.server_config(1).is_ok());
    // Loopback (v4 and v6) needs neither.
    assert!(Options::default().server_config(1).is_ok());
    assert!(Options { cluster: Some("[::1]:7946".into()), ..Options::default() }.server_config(1).is_ok());
}

#[test]
fn gossip_loss_is_off_unless_asked_for() {
    let cluster = |o: Options| o.server_config(1).unwrap().cluster.unwrap();
    assert_eq!(cluster(Options::default()).send_loss_percent, 0);
    assert_eq!(cluster(Options { gossip_loss_percent: Some(5), ..Options::default() }).send_loss_percent, 5);
}
