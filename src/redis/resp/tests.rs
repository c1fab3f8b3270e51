use super::*;

fn dec(buf: &[u8]) -> Step<(Reply<'_>, usize)> {
    decode(buf, &Limits::default())
}

/// The reply of a buffer holding exactly one.
fn one(buf: &[u8]) -> Reply<'_> {
    match dec(buf) {
        Ok(Some((r, n))) if n == buf.len() => r,
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(buf)),
    }
}

fn err(buf: &[u8], limits: &Limits) -> RespError {
    match decode(buf, limits) {
        Err(e) => e,
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(buf)),
    }
}

fn bulk(b: &[u8]) -> Reply<'_> {
    Reply::Bulk(Some(b))
}

const PUBSUB: &[u8] = b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$12\r\nhello\r\nworld\r\n";

#[test]
fn encode_writes_arrays_of_bulk_strings() {
    let mut out = Vec::new();
    encode(&mut out, &[b"SUBSCRIBE", b"news"]);
    assert_eq!(out, b"*2\r\n$9\r\nSUBSCRIBE\r\n$4\r\nnews\r\n");
    out.clear();
    encode(&mut out, &[]);
    assert_eq!(out, b"*0\r\n");
    out.clear();
    encode(&mut out, &[b"", &[b'x'; 12345]]);
    assert!(out.starts_with(b"*2\r\n$0\r\n\r\n$12345\r\nxxx"));
    // Appends: a pipeline is several calls on one buffer.
    encode(&mut out, &[b"PING"]);
    assert!(out.ends_with(b"xxx\r\n*1\r\n$4\r\nPING\r\n"));
}

#[test]
fn a_command_decodes_back_to_its_arguments() {
    let cases: &[&[&[u8]]] = &[
        &[b"PUBLISH", b"news", b"{\"uid\":\"1\"}"],
        &[b"SET", b"k", b"\r\n*1\r\n$-1\r\n\x00\xff"],
        &[b""],
        &[],
    ];
    for args in cases {
        let mut out = Vec::new();
        encode(&mut out, args);
        let want = Reply::Array(Some(args.iter().map(|a| bulk(a)).collect()));
        assert_eq!(one(&out), want);
    }
}

#[test]
fn every_type() {
    assert_eq!(one(b"+OK\r\n"), Reply::Simple(b"OK"));
    assert_eq!(one(b"+\r\n"), Reply::Simple(b""));
    assert_eq!(
        one(b"-ERR unknown command 'x'\r\n"),
        Reply::Error(b"ERR unknown command 'x'")
    );
    assert_eq!(one(b":0\r\n"), Reply::Integer(0));
    assert_eq!(one(b":-5\r\n"), Reply::Integer(-5));
    assert_eq!(one(b":9223372036854775807\r\n"), Reply::Integer(i64::MAX));
    assert_eq!(one(b":-9223372036854775808\r\n"), Reply::Integer(i64::MIN));
    assert_eq!(one(b"$3\r\nfoo\r\n"), bulk(b"foo"));
    assert_eq!(one(b"$0\r\n\r\n"), bulk(b""));
    assert_eq!(one(b"$4\r\n\r\n\r\n\r\n"), bulk(b"\r\n\r\n"));
    assert_eq!(one(b"*0\r\n"), Reply::Array(Some(vec![])));
}

#[test]
fn nulls() {
    assert_eq!(one(b"$-1\r\n"), Reply::Bulk(None));
    assert_eq!(one(b"*-1\r\n"), Reply::Array(None));
    assert_eq!(
        one(b"*2\r\n$-1\r\n*-1\r\n"),
        Reply::Array(Some(vec![Reply::Bulk(None), Reply::Array(None)]))
    );
}

#[test]
fn nested_arrays() {
    let r = one(b"*3\r\n*2\r\n:1\r\n*1\r\n+a\r\n*0\r\n$1\r\nz\r\n");
    assert_eq!(
        r,
        Reply::Array(Some(vec![
            Reply::Array(Some(vec![
                Reply::Integer(1),
                Reply::Array(Some(vec![Reply::Simple(b"a")])),
            ])),
            Reply::Array(Some(vec![])),
            bulk(b"z"),
        ]))
    );
}

#[test]
fn a_pubsub_message_is_three_bulks() {
    let Reply::Array(Some(items)) = one(PUBSUB) else {
        panic!("not an array");
    };
    let parts: Vec<_> = items.iter().map(|i| i.as_bytes().unwrap()).collect();
    assert_eq!(parts, [&b"message"[..], b"news", b"hello\r\nworld"]);
}

#[test]
fn pipelined_replies_come_one_per_call() {
    let mut buf = b"+OK\r\n*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n".to_vec();
    buf.extend_from_slice(PUBSUB);
    buf.extend_from_slice(b"-ERR wrong\r\n$-1\r\n:4");
    let mut got = Vec::new();
    let mut pos = 0;
    while let Some((r, n)) = dec(&buf[pos..]).unwrap() {
        got.push(r);
        pos += n;
    }
    assert_eq!(&buf[pos..], b":4", "an unfinished reply is left");
    assert_eq!(got.len(), 5);
    assert_eq!(got[0], Reply::Simple(b"OK"));
    assert_eq!(
        got[1],
        Reply::Array(Some(vec![
            bulk(b"subscribe"),
            bulk(b"news"),
            Reply::Integer(1)
        ]))
    );
    assert!(matches!(&got[2], Reply::Array(Some(m)) if m[2] == bulk(b"hello\r\nworld")));
    assert_eq!(got[3], Reply::Error(b"ERR wrong"));
    assert_eq!(got[4], Reply::Bulk(None));
}

#[test]
fn every_cut_point_is_partial() {
    let replies: &[&[u8]] = &[
        b"+OK\r\n",
        b"-ERR x\r\n",
        b":-9223372036854775808\r\n",
        b"$5\r\nhe\r\no\r\n",
        b"$-1\r\n",
        b"*-1\r\n",
        b"*0\r\n",
        PUBSUB,
        b"*2\r\n*2\r\n:1\r\n$0\r\n\r\n*1\r\n+\r\n",
    ];
    for reply in replies {
        let whole = one(reply);
        for k in 0..reply.len() {
            assert_eq!(dec(&reply[..k]), Ok(None), "{reply:?} cut at {k}");
        }
        let mut more = reply.to_vec();
        more.extend_from_slice(b"+next\r\n");
        assert_eq!(dec(&more), Ok(Some((whole, reply.len()))));
    }
}

#[test]
fn bad_type_bytes() {
    let d = Limits::default();
    for b in [b'?', b' ', b'\r', b'\n', b'0', b'_', b'>', b'%', b'#', b'~'] {
        assert_eq!(err(&[b, b'\r', b'\n'], &d), RespError::BadType(b));
    }
    assert_eq!(err(b"*2\r\n:1\r\n!x\r\n", &d), RespError::BadType(b'!'));
    assert_eq!(err(b"x", &d), RespError::BadType(b'x'), "decided at once");
}

#[test]
fn integers_are_written_as_redis_writes_them() {
    let d = Limits::default();
    for bad in [
        &b":\r\n"[..],
        b":-\r\n",
        b":01\r\n",
        b":00\r\n",
        b":-0\r\n",
        b":+1\r\n",
        b": 1\r\n",
        b":1 \r\n",
        b":1x\r\n",
        b":9223372036854775808\r\n",
        b":-9223372036854775809\r\n",
        b":99999999999999999999999\r\n",
        b"$01\r\nx\r\n",
        b"*x\r\n",
        b"$\r\n",
    ] {
        assert_eq!(err(bad, &d), RespError::BadInteger, "{bad:?}");
    }
}

#[test]
fn negative_lengths_other_than_minus_one() {
    let d = Limits::default();
    for bad in [
        &b"$-2\r\n"[..],
        b"*-2\r\n",
        b"$-9223372036854775808\r\n",
        b"*-100\r\n",
    ] {
        assert_eq!(err(bad, &d), RespError::BadLength, "{bad:?}");
    }
}

#[test]
fn lines_end_in_crlf() {
    let d = Limits::default();
    for bad in [
        &b"+OK\n"[..],
        b"+OK\rx",
        b"-ERR\n",
        b":1\n",
        b":1\rx",
        b"$3\n",
        b"$3\r\nfooX",
        b"$3\r\nfoo\rX",
        b"$3\r\nfoo\n\r",
        b"*1\r\n$1\r\nab\r\n",
    ] {
        assert_eq!(err(bad, &d), RespError::MissingCrlf, "{bad:?}");
    }
}

#[test]
fn huge_declared_lengths_are_refused_at_the_header() {
    let d = Limits::default();
    assert_eq!(err(b"$8388609\r\n", &d), RespError::TooLong);
    assert_eq!(err(b"$9223372036854775807\r\n", &d), RespError::TooLong);
    assert_eq!(err(b"*1048577\r\n", &d), RespError::TooManyElements);
    assert_eq!(
        err(b"*9223372036854775807\r\n", &d),
        RespError::TooManyElements
    );
    // Within the limits, an announced length only waits for its bytes.
    assert_eq!(dec(b"$8388608\r\nabc"), Ok(None));
    let mut many = b"*1000000\r\n".to_vec();
    for _ in 0..1000 {
        many.extend_from_slice(b":1\r\n");
    }
    assert_eq!(dec(&many), Ok(None));

    let small = Limits {
        max_bulk: 3,
        max_elements: 3,
        ..Limits::default()
    };
    assert_eq!(
        decode(b"$3\r\nabc\r\n", &small),
        Ok(Some((bulk(b"abc"), 9)))
    );
    assert_eq!(err(b"$4\r\n", &small), RespError::TooLong);
    assert!(decode(b"*3\r\n:1\r\n:2\r\n:3\r\n", &small)
        .unwrap()
        .is_some());
    // Counted across the nested arrays of one reply.
    assert_eq!(
        err(b"*2\r\n*2\r\n:1\r\n:2\r\n:3\r\n", &small),
        RespError::TooManyElements
    );
    // Each reply has its own count.
    let two = b"*3\r\n:1\r\n:2\r\n:3\r\n*3\r\n:1\r\n:2\r\n:3\r\n";
    let (_, n) = decode(two, &small).unwrap().unwrap();
    assert!(decode(&two[n..], &small).unwrap().is_some());
}

#[test]
fn depth_past_the_limit() {
    let nested = |levels: usize| {
        let mut b = b"*1\r\n".repeat(levels);
        b.extend_from_slice(b":1\r\n");
        b
    };
    let d = Limits::default();
    assert!(dec(&nested(8)).unwrap().is_some());
    assert_eq!(err(&nested(9), &d), RespError::TooDeep);
    let flat = Limits {
        max_depth: 1,
        ..Limits::default()
    };
    assert!(decode(PUBSUB, &flat).unwrap().is_some());
    assert_eq!(err(b"*1\r\n*-1\r\n", &flat), RespError::TooDeep);
    let none = Limits {
        max_depth: 0,
        ..Limits::default()
    };
    assert_eq!(err(b"*0\r\n", &none), RespError::TooDeep);
    assert_eq!(decode(b":1\r\n", &none), Ok(Some((Reply::Integer(1), 4))));
    // Without a depth limit, decoding still does not recurse.
    let unbounded = Limits {
        max_depth: usize::MAX,
        ..Limits::default()
    };
    assert_eq!(decode(&b"*1\r\n".repeat(200_000), &unbounded), Ok(None));
}

#[test]
fn a_line_without_crlf_is_not_buffered_forever() {
    let d = Limits::default();
    let mut long = vec![b'+'];
    long.extend_from_slice(&[b'x'; 64 << 10]);
    assert_eq!(dec(&long), Ok(None), "exactly max_line: may still end");
    long.push(b'x');
    assert_eq!(err(&long, &d), RespError::LineTooLong);
    long.extend_from_slice(b"\r\n");
    assert_eq!(err(&long, &d), RespError::LineTooLong, "also with its CRLF");

    let four = Limits {
        max_line: 4,
        ..Limits::default()
    };
    assert_eq!(
        decode(b"-abcd\r\n", &four),
        Ok(Some((Reply::Error(b"abcd"), 7)))
    );
    assert_eq!(decode(b"-abcd\r", &four), Ok(None));
    assert_eq!(err(b"-abcde", &four), RespError::LineTooLong);
    // Integer lines are bounded by their 20 digits instead.
    assert_eq!(
        decode(b":-9223372036854775808\r\n", &four),
        Ok(Some((Reply::Integer(i64::MIN), 23)))
    );
}

#[test]
fn an_error_is_the_same_from_every_prefix_that_finds_it() {
    let d = Limits::default();
    for bad in [
        &b"*3\r\n$7\r\nmessage\r\n$4\r\nnewsX\r\n"[..],
        b"*2\r\n:1\r\n:01\r\n",
        b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n",
        b"$-2\r\n",
    ] {
        let e = err(bad, &d);
        for k in 0..bad.len() {
            let got = dec(&bad[..k]);
            assert!(got == Ok(None) || got == Err(e), "{bad:?} at {k}: {got:?}");
        }
    }
}

#[test]
fn helpers() {
    assert_eq!(Reply::Simple(b"OK").as_bytes(), Some(&b"OK"[..]));
    assert_eq!(bulk(b"x").as_bytes(), Some(&b"x"[..]));
    assert_eq!(Reply::Bulk(None).as_bytes(), None);
    assert_eq!(Reply::Error(b"ERR").as_bytes(), None);
    assert_eq!(Reply::Integer(7).as_int(), Some(7));
    assert_eq!(bulk(b"7").as_int(), None);
}

#[test]
fn errors_read_well() {
    let all = [
        RespError::BadType(b'>'),
        RespError::BadInteger,
        RespError::BadLength,
        RespError::TooLong,
        RespError::LineTooLong,
        RespError::TooManyElements,
        RespError::TooDeep,
        RespError::MissingCrlf,
    ];
    let texts: std::collections::HashSet<String> = all.iter().map(|e| e.to_string()).collect();
    assert_eq!(texts.len(), all.len());
    assert_eq!(all[0].to_string(), "unknown RESP type byte 0x3e");
}

#[test]
fn frames_read_in_place_and_agree_with_the_tree() {
    let d = Limits::default();
    let (f, n) = Frame::decode(PUBSUB, &d).unwrap().unwrap();
    assert_eq!(n, PUBSUB.len());
    let mut items = f.items().unwrap();
    assert_eq!(items.len(), 3);
    let parts: Vec<_> = items.by_ref().map(|i| i.as_bytes().unwrap()).collect();
    assert_eq!(parts, [&b"message"[..], b"news", b"hello\r\nworld"]);
    assert_eq!(items.next(), None);
    assert_eq!(
        Frame::decode(b":42\r\n+x\r\n", &d),
        Ok(Some((Frame::Integer(42), 5)))
    );
    assert_eq!(Frame::Integer(42).as_int(), Some(42));
    assert_eq!(Frame::Error(b"ERR").as_bytes(), None);
    assert_eq!(Frame::Bulk(None).items(), None);
    for reply in [
        &b"*3\r\n*2\r\n:1\r\n*1\r\n+a\r\n*0\r\n$1\r\nz\r\n"[..],
        b"*2\r\n$-1\r\n*-1\r\n",
        b"*0\r\n",
        b"*-1\r\n",
        b"-ERR x\r\n",
        PUBSUB,
    ] {
        let (frame, n) = Frame::decode(reply, &d).unwrap().unwrap();
        assert_eq!(n, reply.len());
        assert_eq!(frame.to_reply(), one(reply), "{reply:?}");
    }
    // Deeper than the inline levels: the same answers.
    let deep = Limits {
        max_depth: 20,
        ..Limits::default()
    };
    let mut nested = b"*1\r\n".repeat(12);
    nested.extend_from_slice(b":7\r\n");
    let (mut frame, _) = Frame::decode(&nested, &deep).unwrap().unwrap();
    for _ in 0..12 {
        frame = frame.items().unwrap().next().unwrap();
    }
    assert_eq!(frame, Frame::Integer(7));
    assert_eq!(Frame::decode(&nested[..nested.len() - 1], &deep), Ok(None));
}

#[test]
fn a_command_named_apart_from_its_arguments() {
    let mut a = Vec::new();
    encode(&mut a, &[b"SUBSCRIBE", b"x", b"yy"]);
    let mut b = Vec::new();
    encode_command(&mut b, b"SUBSCRIBE", &[b"x", b"yy"]);
    assert_eq!(a, b);
    for args in [
        &[][..],
        &[&b""[..]],
        &[b"PUBLISH", &[b'x'; 1000], b"123456789"],
    ] {
        let mut out = b"junk".to_vec();
        encode(&mut out, args);
        assert_eq!(encoded_len(args), out.len() - 4, "{args:?}");
    }
}
