use super::*;

fn ok(s: &str) -> Command<'_> {
    parse(s.as_bytes()).unwrap_or_else(|e| panic!("{s}: {e}"))
}

#[test]
fn the_seed_line() {
    assert_eq!(
        ok(r#"{"uid":"uid1","percent":"88%"}"#),
        Command::Push("uid1".into())
    );
    assert!(matches!(
        ok(r#"{"uid":"uid1"}"#),
        Command::Push(Cow::Borrowed("uid1"))
    ));
    assert_eq!(
        ok(r#" { "percent" : [1, {"a": null}], "uid" : 42 } "#),
        Command::Push("42".into())
    );
    assert_eq!(ok(r#"{"uid":"\u0075id\n"}"#), Command::Push("uid\n".into()));
    assert_eq!(ok(r#"{"\u0075id":"x"}"#), Command::Push("x".into()));
}

#[test]
fn other_commands() {
    assert_eq!(
        ok(r#"{"uids":["a",2,"c"],"m":1}"#),
        Command::PushMany(vec!["a".into(), "2".into(), "c".into()])
    );
    assert_eq!(ok(r#"{"all":true,"m":"hi"}"#), Command::Broadcast);
    assert_eq!(ok(r#"{"online":"u"}"#), Command::Online("u".into()));
    assert_eq!(ok(r#"{"count":true}"#), Command::Count);
}

#[test]
fn bad_lines_get_clear_errors() {
    let cases: &[(&[u8], &str)] = &[
        (b"", "expected a JSON object"),
        (b"uid1", "expected a JSON object"),
        (b"[1]", "expected a JSON object"),
        (b"{\"uid\":\"a\"", "malformed JSON"),
        (b"{\"uid\":\"a\"} x", "trailing"),
        (b"{\"uid\":01}", "malformed"),
        (b"{\"uid\":\"a\",}", "malformed"),
        (b"{\"uid\":tru}", "malformed"),
        (b"{\"uid\":\"a\x01\"}", "control character"),
        (b"{\"uid\":\"\\x\"}", "bad escape"),
        (b"{\"uid\":\"\xff\"}", "not valid UTF-8"),
        (b"{\"percent\":1}", "missing \"uid\""),
        (b"{\"uid\":null}", "must be a string or a number"),
        (b"{\"uid\":[\"a\"]}", "must be a string or a number"),
        (b"{\"uid\":\"\"}", "empty uid"),
        (b"{\"uid\":\"a\",\"all\":true}", "exactly one"),
        (b"{\"uids\":[]}", "\"uids\" is an empty list"),
        (b"{\"uids\":\"a\"}", "\"uids\" must be a list"),
        (b"{\"all\":false}", "\"all\" must be true"),
        (b"{\"count\":false}", "\"count\" must be true"),
        (b"{\"auth\":\"t\"}", "no API token"),
        (b"{\"uids\":[\"a\",{}]}", "must be a string"),
        (b"{\"all\":1}", "\"all\" must be true"),
    ];
    for (line, want) in cases {
        let err = parse(line).unwrap_err().to_string();
        assert!(
            err.contains(want),
            "{:?}: {err}",
            String::from_utf8_lossy(line)
        );
    }
}

#[test]
fn deep_nesting_is_refused_without_recursing_far() {
    let deep = format!(
        "{{\"uid\":\"a\",\"x\":{}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert!(parse(deep.as_bytes())
        .unwrap_err()
        .to_string()
        .contains("too deep"));
    let fine = format!(
        "{{\"uid\":\"a\",\"x\":{}{}}}",
        "[".repeat(60),
        "]".repeat(60)
    );
    assert!(parse(fine.as_bytes()).is_ok());
}

#[test]
fn agrees_with_serde_json_on_validity() {
    for s in [
        r#"{"uid":"a","n":-0.5e+3}"#,
        r#"{"uid":"a","n":1.}"#,
        r#"{"uid":"a","n":-}"#,
        r#"{"uid":"a","s":"\ud83d\ude00"}"#,
        r#"{"uid":"a","s":"\ud800"}"#,
        r#"{"uid":"a","n":1e400}"#,
        r#"{"uid":"a","n":1e-400}"#,
        r#"{"uid":"a","n":-1.5E+300}"#,
        r#"{"uid":"a","s":"\ude00x"}"#,
        r#"{"uid":"a","s":"\ud800\u0041"}"#,
        r#"{"uid":"a","o":{"k":[true,false,null]}}"#,
        r#"{"uid":"a" "b":1}"#,
    ] {
        let ours = parse(s.as_bytes()).is_ok();
        let theirs = serde_json::from_str::<serde_json::Value>(s).is_ok();
        assert_eq!(ours, theirs, "{s}");
    }
}

#[test]
fn an_escape_that_does_not_decode_is_an_error_not_an_empty_uid() {
    for bad in [
        &br#"{"uid":"\ud800"}"#[..],
        br#"{"\udc00":"x"}"#,
        br#"{"uid":"\q"}"#,
    ] {
        let err = parse(bad).unwrap_err();
        assert!(matches!(err, CommandError::Malformed(..)), "{err}");
    }
}

#[test]
fn topic_commands() {
    assert_eq!(
        ok(r#"{"topic":"news","title":"x"}"#),
        Command::Publish("news".into())
    );
    assert_eq!(
        ok(r#"{"join":"room.7","uid":"u1"}"#),
        Command::Join("room.7".into(), vec!["u1".into()])
    );
    assert_eq!(
        ok(r#"{"uids":["a",2],"leave":"r"}"#),
        Command::Leave("r".into(), vec!["a".into(), "2".into()])
    );
    assert_eq!(ok(r#"{"drop":"r"}"#), Command::Drop("r".into()));
    assert_eq!(ok(r#"{"presence":"r"}"#), Command::Presence("r".into()));
    assert_eq!(
        ok(r#"{"members":"r"}"#),
        Command::Members("r".into(), None, DEFAULT_MEMBERS)
    );
    assert_eq!(
        ok(r#"{"members":"r","after":"u1","limit":100000}"#),
        Command::Members("r".into(), Some("u1".into()), MAX_MEMBERS)
    );
    assert_eq!(ok(r#"{"kick":"u1"}"#), Command::Kick("u1".into()));
    for (bad, says) in [
        (&br#"{"topic":"a b"}"#[..], "topic name"),
        (br#"{"topic":"a%b"}"#, "topic name"),
        (br#"{"topic":7}"#, "topic name"),
        (br#"{"join":"r"}"#, "need \"uid\""),
        (br#"{"join":"r","uid":"a","uids":["b"]}"#, "exactly one"),
        (br#"{"join":"r","leave":"r","uid":"a"}"#, "exactly one"),
        (br#"{"topic":"r","uid":"a"}"#, "exactly one"),
        (br#"{"kick":""}"#, "empty uid"),
        (br#"{"members":"r","limit":-1}"#, "limit"),
        (br#"{"members":"r","limit":"5"}"#, "limit"),
    ] {
        let e = parse(bad).unwrap_err().to_string();
        assert!(e.contains(says), "{}: {e}", String::from_utf8_lossy(bad));
    }
    assert!(valid_topic(&"x".repeat(64)) && !valid_topic(&"x".repeat(65)));
}
