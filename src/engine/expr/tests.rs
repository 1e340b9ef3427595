use super::*;
use crate::engine::json::Parser;

fn outputs(expr: &Expr, input: &str, jq_only: bool) -> Result<Vec<String>, String> {
    let mut p = Parser::new();
    let doc = p.parse(input).unwrap();
    let frame = V::from_doc(doc);
    let mut scope = Scope::new();
    scope.set(Var::Frame, frame.clone());
    scope.set(Var::Market, V::Str("spot".into()));
    let mut out = Vec::new();
    let mut sink = |v: V<'_>| {
        out.push(normalize(&v));
        Ok(())
    };
    let r = if jq_only {
        expr.run_jq(&frame, &scope, &mut sink)
    } else {
        expr.run(&frame, &scope, &mut sink)
    };
    r.map(|()| out).map_err(|e| e.to_string())
}

/// Compare numbers by value, the rest by JSON text.
fn normalize(v: &V<'_>) -> String {
    match v {
        V::Num(n) => parse_decimal(n).map_or_else(|| n.to_string(), |d| d.normalize().to_string()),
        other => other.to_json(),
    }
}

#[test]
fn fast_and_jq_agree() {
    let frame = r#"{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","s":"BTCUSDT","p":"0.35280000","q":"58","m":true,"T":1633998523963,"b":[["1","2"],["3","0"]],"n":null,"x":-1.5},"arr":[1,2,3],"k":"a\"b"}"#;
    let cases = [
        ".data.p",
        ".data.m",
        "if .data.m then \"sell\" else \"buy\" end",
        ".data.b[] | select(.[1] != \"0\") | .[0]",
        ".data.e == \"aggTrade\" and (.stream | endswith(\"@aggTrade\"))",
        ".data.missing // .data.s",
        ".data.n // \"dflt\"",
        "\"\\(.data.s)-\\(.data.T)\"",
        ".data.s | ascii_downcase",
        ".data.x | abs",
        "-.data.x",
        ".data.T > 1000",
        ".arr[-1]",
        ".arr[]",
        ".arr | length",
        ".k | length",
        ".data | has(\"e\")",
        ".data | has(\"zz\")",
        ".data.p | tonumber",
        ".data.T | tostring",
        ".data.e | ltrimstr(\"agg\")",
        ".data.e | rtrimstr(\"Trade\")",
        "$frame.data.s",
        "$market",
        ".stream | startswith(\"btc\")",
        ".data.p? // 0",
        ".arr[.arr[0]]",
        "first(.arr[])",
        ".data.q * 2",
        "(.arr[] | select(. > 1)), \"x\"",
        ".data | type",
        "[.arr[] | . * 2]",
        ".data.b | map(.[0])",
        ".nope.deeper",
        "try error(\"x\")",
        ".data.s as $s | $s",
        ".stream | contains(\"@agg\")",
        ".arr | contains([1])",
        ".stream | split(\"@\")",
        ".stream | split(\"@\") | .[0] | ascii_upcase",
        ".stream | split(\"@\") | .[5]",
        ".stream | split(\"btc\") | length",
        ".stream | split(\"\")",
        ".data.s | split(\".\") | .[-1]",
        ".data.T | split(\".\")",
        "(.nope // [])[]",
        ".arr[1:][]",
        ".arr[:-1][]",
        ".arr[-2:][]",
        ".arr[1:length - 2][]",
        ".arr[5:9][]",
        ".arr[2:1][]",
        ".arr[-9:1][]",
        ".data.b[0:1][] | .[0]",
        "[.arr[1:2][]]",
        ".arr[.arr[0]:][]",
        ".data.s[1:][]",
        ".arr[0.5:][]",
        "(.arr // [])[]",
        ".nope // {}",
        "({} | length), ([] | length)",
        "[] == [], {} == {}",
        ".nope // [] | type",
    ];
    for src in cases {
        let e = Expr::compile(src).unwrap_or_else(|err| panic!("{src}: {err:?}"));
        let fast = outputs(&e, frame, false);
        let jq = outputs(&e, frame, true);
        assert_eq!(fast, jq, "expression `{src}` (fast path: {})", e.is_fast());
    }
}

/// Outputs as exact JSON text (no normalisation), or the error.
fn exact(expr: &Expr, input: &str, jq_only: bool) -> Result<Vec<String>, String> {
    let mut p = Parser::new();
    let frame = V::from_doc(p.parse(input).unwrap());
    let scope = Scope::new();
    let mut out = Vec::new();
    let mut sink = |v: V<'_>| {
        out.push(v.to_json());
        Ok(())
    };
    let r = if jq_only {
        expr.run_jq(&frame, &scope, &mut sink)
    } else {
        expr.run(&frame, &scope, &mut sink)
    };
    r.map(|()| out).map_err(|e| e.to_string())
}

#[test]
fn numbers_agree_exactly_on_both_paths() {
    let frame = r#"{"a":1,"p":"0.1","q":"0.2","x":0.1,"y":0.2,"px":"30236.123456789","sz":"0.000123456789012",
        "big":12345678901234567890,"huge":123456789012345678901234567890123,"e":1e-8,"f":"1.50",
        "s53":9007199254740993,"ms":"1652459224818","neg":"-0.00000001","sci":"2E+3","t":1652459224818.5}"#;
    let cases = [
        ("0.1 + 0.2", Some("0.3")),
        (".x + .y", Some("0.3")),
        ("(.p | tonumber) + (.q | tonumber)", Some("0.3")),
        (".a / 3", Some("0.3333333333333333333333333333")),
        ("2 / 3", Some("0.6666666666666666666666666667")),
        (
            "(.px | tonumber) * (.sz | tonumber)",
            Some("3.732854714145583672002468"),
        ),
        (".x * .y", Some("0.02")),
        ("(.ms | tonumber) / 1000", Some("1652459224.818")),
        (".t * 1000", Some("1652459224818500.0")),
        (".big + 1", Some("12345678901234567891")),
        (".big * 1000", Some("12345678901234567890000")),
        (".s53 + 0", Some("9007199254740993")),
        (".s53", Some("9007199254740993")),
        (".f | tonumber", None),
        (".ms | tonumber", Some("1652459224818")),
        (".neg | tonumber", None),
        (".sci | tonumber", None),
        (".e * 3", None),
        (".huge", None),
        (".huge + 1", None),
        (".big > 12345678901234567889", Some("true")),
        ("(.f | tonumber) == 1.5", Some("true")),
        (".x - .y", Some("-0.1")),
        ("-(.px | tonumber)", None),
        (".a / 0", None),
    ];
    for (src, want) in cases {
        let e = Expr::compile(src).unwrap_or_else(|err| panic!("{src}: {err:?}"));
        let fast = exact(&e, frame, false);
        let jq = exact(&e, frame, true);
        assert_eq!(fast, jq, "`{src}` (fast form: {})", e.is_fast());
        if let Some(w) = want {
            assert_eq!(fast, Ok(vec![w.to_owned()]), "`{src}`");
        }
    }
}

#[test]
fn evaluations_are_counted_by_the_path_that_answered() {
    let frame = r#"{"a":"1.5","huge":123456789012345678901234567890123,"o":{"k":1}}"#;
    let count = |src: &str, jq_only: bool| {
        let e = Expr::compile(src).unwrap();
        let before = eval_stats();
        let _mode = jq_only.then(interpreter_only);
        let _ = exact(&e, frame, false);
        eval_stats().since(&before)
    };
    let s = |fast, fallbacks, interpreted| EvalStats {
        fast,
        fallbacks,
        interpreted,
    };
    assert_eq!(count(".a", false), s(1, 0, 0));
    assert_eq!(count(".huge + 1", false), s(0, 1, 0), "beyond a decimal");
    assert_eq!(
        count(".o.k.x", false),
        s(0, 1, 0),
        "errors are worded by jq"
    );
    assert_eq!(count(".o | keys", false), s(0, 0, 1), "no fast form");
    assert_eq!(count(".a", true), s(0, 0, 1), "fast path switched off");
    assert_eq!(count(".a", false), s(1, 0, 0), "and back on");
}

#[test]
fn errors_agree_in_kind() {
    let frame = r#"{"a":5,"s":"x"}"#;
    for src in [".a.b", ".s[0]", ".a[]", ".s | ascii_downcase | .x"] {
        let e = Expr::compile(src).unwrap();
        assert!(e.is_fast(), "{src}");
        assert!(outputs(&e, frame, false).is_err(), "{src} fast should fail");
        assert!(outputs(&e, frame, true).is_err(), "{src} jq should fail");
    }
}

#[test]
fn optional_steps_swallow_only_their_own_errors() {
    let e = Expr::compile(".a?.b").unwrap();
    assert!(outputs(&e, r#"[1]"#, false).unwrap().is_empty());
    assert!(outputs(&e, r#"{"a":5}"#, false).is_err());
    assert!(outputs(&e, r#"{"a":5}"#, true).is_err());
}

#[test]
fn first_and_test() {
    let mut p = Parser::new();
    let v = V::from_doc(p.parse(r#"{"a":[1,2]}"#).unwrap());
    let s = Scope::new();
    let e = Expr::compile(".a[]").unwrap();
    assert!(matches!(e.first(&v, &s).unwrap(), Some(V::Num(n)) if n == "1"));
    assert!(Expr::compile(".a | length == 2").unwrap().test(&v, &s));
    assert!(
        !Expr::compile(".a.b == 1").unwrap().test(&v, &s),
        "errors do not match"
    );
}
