//! Evaluation and expansion: stages, ARG scoping, ENV vs ARG, build args, targets, flags,
//! and which instructions Docker expands.

use std::collections::BTreeMap;

use crate::*;

fn eval_with(text: &str, args: &[(&str, &str)], target: Option<&str>) -> Result<Dockerfile, Error> {
    let ast = parse(text, "Dockerfile")?;
    let args: BTreeMap<String, String> = args
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    evaluate(&ast, &args, target)
}

fn eval(text: &str) -> Dockerfile {
    eval_with(text, &[], None).unwrap_or_else(|e| panic!("{e}"))
}

fn err(text: &str) -> String {
    match eval_with(text, &[], None) {
        Ok(d) => panic!("accepted: {d:?}"),
        Err(e) => e.to_string(),
    }
}

/// The stage's instructions expanded with an empty base environment.
fn expanded(d: &Dockerfile, stage: usize) -> Vec<Command> {
    d.stages[stage]
        .expand(&[])
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|i| i.command)
        .collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn stages_have_indices_lowercase_names_and_may_build_on_earlier_stages() {
    let d = eval("FROM alpine AS Build\nRUN make\nFROM BUILD as test\nFROM scratch\n");
    assert_eq!(d.stages.len(), 3);
    assert_eq!(d.stages[0].name.as_deref(), Some("build"));
    assert_eq!(
        (d.stages[0].base.as_str(), d.stages[0].base_stage),
        ("alpine", None)
    );
    assert_eq!((d.stages[1].index, d.stages[1].base_stage), (1, Some(0)));
    assert_eq!(
        (d.stages[2].name.as_deref(), d.stages[2].base.as_str()),
        (None, "scratch")
    );
    assert_eq!(d.stages[2].line, 4);
    assert_eq!(d.target, 2);
    assert_eq!(d.stage("BUILD").map(|s| s.index), Some(0));
    assert_eq!(d.stage("1").map(|s| s.index), Some(1));
}

#[test]
fn global_args_are_visible_to_from_only_unless_redeclared() {
    let text = "ARG V=1\nARG IMG=alpine:$V\nFROM ${IMG}\nENV X=[$V]\nARG V\nENV Y=[$V]\n";
    let d = eval(text);
    assert_eq!(d.stages[0].base, "alpine:1");
    assert_eq!(
        d.global_args,
        vec![
            ("V".into(), Some("1".into())),
            ("IMG".into(), Some("alpine:1".into()))
        ]
    );
    let cmds = expanded(&d, 0);
    assert_eq!(cmds[0], Command::Env(pairs(&[("X", "[]")])));
    assert_eq!(cmds[1], Command::Arg(vec![("V".into(), Some("1".into()))]));
    assert_eq!(cmds[2], Command::Env(pairs(&[("Y", "[1]")])));
}

#[test]
fn build_args_override_defaults_everywhere() {
    let text =
        "ARG V=1\nFROM alpine:$V\nARG V=3\nARG W=w\nARG NODEFAULT\nLABEL v=$V w=$W n=$NODEFAULT\n";
    let d = eval_with(text, &[("V", "2"), ("NODEFAULT", "given")], None)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d.stages[0].base, "alpine:2");
    let cmds = expanded(&d, 0);
    assert_eq!(
        cmds[3],
        Command::Label(pairs(&[("v", "2"), ("w", "w"), ("n", "given")]))
    );
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
}

#[test]
fn env_overrides_arg_and_run_gets_the_remaining_args() {
    let text = "FROM a\nARG X=arg\nARG Y=why\nENV X=env\nWORKDIR /$X/$Y\nRUN echo $X\n";
    let d = eval_with(text, &[("HTTP_PROXY", "http://p")], None).unwrap_or_else(|e| panic!("{e}"));
    let cmds = expanded(&d, 0);
    assert_eq!(cmds[3], Command::Workdir("/env/why".into()));
    let Command::Run(run) = &cmds[4] else {
        panic!("{:?}", cmds[4])
    };
    assert_eq!(
        run.cmd,
        ShellOrExec::Shell("echo $X".into()),
        "RUN is left to the shell"
    );
    assert_eq!(
        run.build_args,
        pairs(&[("HTTP_PROXY", "http://p"), ("Y", "why")])
    );
    assert!(
        d.warnings.is_empty(),
        "proxy args are never unused: {:?}",
        d.warnings
    );
}

#[test]
fn a_later_arg_replaces_an_env_for_expansion_and_run_like_buildkit() {
    let d =
        eval("FROM a\nENV X=env\nARG X=arg\nARG UNSET\nWORKDIR /$X\nRUN x\nENV X=again\nRUN y\n");
    let cmds = expanded(&d, 0);
    assert_eq!(cmds[3], Command::Workdir("/arg".into()));
    let Command::Run(run) = &cmds[4] else {
        panic!("{:?}", cmds[4])
    };
    assert_eq!(run.build_args, pairs(&[("X", "arg")]));
    let Command::Run(run) = &cmds[6] else {
        panic!("{:?}", cmds[6])
    };
    assert!(run.build_args.is_empty(), "{:?}", run.build_args);
}

/// BuildKit 0.25's RUN history for this Dockerfile (seen with `docker save`):
/// `|4 A=2 G=g B=bb C=4` and then `|4 A=5 G=g B=bb C=4`: the base stage's ARGs first, each
/// name once where first declared, the value at the RUN, an ENV's value over the ARG's.
#[test]
fn run_history_args_follow_declaration_order_across_stages() {
    let text = "ARG G=g\nFROM a AS base\nARG A=1\nARG G\nRUN x\nFROM base\nARG B\nARG A=2\n\
                ARG C=3\nARG NOVAL\nENV C=4\nRUN y\nARG A=5\nRUN z\n";
    let d = eval_with(text, &[("B", "bb"), ("HTTP_PROXY", "http://p")], None)
        .unwrap_or_else(|e| panic!("{e}"));
    let history = |stage: usize, at: usize| {
        let cmds = expanded(&d, stage);
        let Command::Run(run) = &cmds[at] else {
            panic!("{:?}", cmds[at])
        };
        run.history_args.clone()
    };
    assert_eq!(history(0, 2), pairs(&[("A", "1"), ("G", "g")]));
    assert_eq!(
        history(1, 5),
        pairs(&[
            ("A", "2"),
            ("G", "g"),
            ("B", "bb"),
            ("C", "4"),
            ("NOVAL", "")
        ])
    );
    assert_eq!(
        history(1, 7),
        pairs(&[
            ("A", "5"),
            ("G", "g"),
            ("B", "bb"),
            ("C", "4"),
            ("NOVAL", "")
        ])
    );
}

#[test]
fn an_instruction_sees_the_values_from_before_it() {
    let d = eval("FROM a\nENV A=1\nENV A=2 B=$A\nENV C=$A\n");
    let cmds = expanded(&d, 0);
    assert_eq!(cmds[1], Command::Env(pairs(&[("A", "2"), ("B", "1")])));
    assert_eq!(cmds[2], Command::Env(pairs(&[("C", "2")])));
}

#[test]
fn the_base_image_environment_counts_for_expansion() {
    let d = eval("FROM a\nWORKDIR $HOME/app\nUSER ${USER:-nobody}\n");
    let base = pairs(&[("HOME", "/root")]);
    let cmds: Vec<Command> = d.stages[0]
        .expand(&base)
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|i| i.command)
        .collect();
    assert_eq!(
        cmds,
        [
            Command::Workdir("/root/app".into()),
            Command::User("nobody".into())
        ]
    );
}

/// BuildKit 0.25 only warns about a repeated stage name (lint DuplicateStageName); `FROM
/// name` means the last stage of that name defined before it, `--target` the last in the file.
#[test]
fn a_repeated_stage_name_is_a_warning_and_means_the_last_such_stage() {
    let text = "FROM a AS x\nFROM b AS X\nFROM x AS y\nFROM c AS x\nFROM x\n";
    let d = eval_with(text, &[], None).unwrap_or_else(|e| panic!("{e}"));
    let lines: Vec<Option<usize>> = d.warnings.iter().map(|w| w.line).collect();
    assert_eq!(lines, vec![Some(2), Some(4)], "{:?}", d.warnings);
    assert!(d.warnings[0].message.contains("duplicate stage name 'x'"));
    assert_eq!(d.stages[2].base_stage, Some(1));
    assert_eq!(d.stages[4].base_stage, Some(3));
    let d = eval_with(text, &[], Some("x")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d.target, 3);
    assert_eq!(d.stages.len(), 4);
}

#[test]
fn unused_build_args_are_a_warning() {
    let d = eval_with(
        "ARG USED\nFROM a\nARG ALSO\n",
        &[("USED", "1"), ("ALSO", "2"), ("NOPE", "3")],
        None,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d.warnings.len(), 1);
    assert_eq!(
        d.warnings[0].message,
        "one or more build-args [NOPE] were not consumed"
    );
}

#[test]
fn target_keeps_the_stages_up_to_it() {
    let text = "FROM a AS one\nFROM b AS two\nFROM c\n";
    let d = eval_with(text, &[], Some("ONE")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((d.stages.len(), d.target), (1, 0));
    let e = eval_with(text, &[], Some("three")).unwrap_err().to_string();
    assert_eq!(e, "target stage \"three\" could not be found");
}

#[test]
fn platform_args_are_automatic_for_from_and_declared_in_stages() {
    let d =
        eval("FROM --platform=$BUILDPLATFORM a\nARG TARGETARCH\nENV T=$TARGETARCH O=[$TARGETOS]\n");
    let platform = super::platform_args_for(&super::host_platform())
        .into_iter()
        .find(|(k, _)| k == "BUILDPLATFORM")
        .map(|(_, v)| v);
    assert_eq!(d.stages[0].platform, platform);
    let arch = super::platform_args_for(&super::host_platform())
        .into_iter()
        .find(|(k, _)| k == "TARGETARCH")
        .map(|(_, v)| v)
        .unwrap_or_default();
    assert_eq!(
        expanded(&d, 0)[1],
        Command::Env(pairs(&[("T", arch.as_str()), ("O", "[]")]))
    );
}

#[test]
fn a_target_platform_sets_the_target_args_and_leaves_the_build_args_to_the_host() {
    let text = "ARG TARGETARCH\nFROM --platform=$BUILDPLATFORM a AS build\n\
                ARG TARGETPLATFORM TARGETOS TARGETARCH TARGETVARIANT BUILDPLATFORM\n\
                ENV T=$TARGETPLATFORM/$TARGETOS/$TARGETARCH/[$TARGETVARIANT] B=$BUILDPLATFORM\n\
                FROM b-$TARGETARCH\nENV X=[$TARGETARCH]\n";
    let ast = parse(text, "Dockerfile").unwrap();
    let none = BTreeMap::new();
    for (wanted, platform, os_arch_variant) in [
        ("linux/arm64", "linux/arm64", "linux/arm64/linux/arm64/[]"),
        (
            "linux/arm64/v8",
            "linux/arm64",
            "linux/arm64/linux/arm64/[]",
        ),
        ("linux/arm", "linux/arm/v7", "linux/arm/v7/linux/arm/[v7]"),
        ("linux/s390x", "linux/s390x", "linux/s390x/linux/s390x/[]"),
    ] {
        let d = evaluate_for_platform(&ast, &none, None, Some(wanted)).unwrap();
        let host = super::host_platform();
        assert_eq!(d.stages[0].platform.as_deref(), Some(host.as_str()));
        let arch = platform.split('/').nth(1).unwrap();
        assert_eq!(d.stages[1].base, format!("b-{arch}"));
        assert_eq!(
            expanded(&d, 0)[1],
            Command::Env(pairs(&[("T", os_arch_variant), ("B", host.as_str())]))
        );
        // Not declared in the second stage: not visible there.
        assert_eq!(expanded(&d, 1)[0], Command::Env(pairs(&[("X", "[]")])));
    }
    // A build arg still overrides an automatic one.
    let args: BTreeMap<String, String> = [("TARGETARCH".to_string(), "riscv64".to_string())]
        .into_iter()
        .collect();
    let d = evaluate_for_platform(&ast, &args, None, Some("linux/arm64")).unwrap();
    assert_eq!(d.stages[1].base, "b-riscv64");
}

#[test]
fn expanding_instructions_follow_docker() {
    let text = "FROM a\nENV D=/dst F=file P=8080 U=app V=/vol S=SIGTERM\n\
                COPY --from=$F --chown=$U --chmod=0$P --exclude=*.$F $F \"$D\"/\n\
                ADD --checksum=sha256:$F http://x/$F /$D/\n\
                EXPOSE $P ${P}/udp\nVOLUME [\"$V\"]\nUSER $U\nSTOPSIGNAL $S\nLABEL \"$U\"=\"$D\"\n\
                CMD echo $D\nENTRYPOINT [\"$D\"]\nSHELL [\"/bin/$U\"]\nONBUILD RUN $D\nHEALTHCHECK CMD $D\n";
    let cmds = expanded(&eval(text), 0);
    let Command::Copy(copy) = &cmds[1] else {
        panic!("{:?}", cmds[1])
    };
    assert_eq!(copy.sources, [CopySource::Path("file".into())]);
    assert_eq!(copy.dest, "/dst/");
    assert_eq!(
        (
            copy.from.as_deref(),
            copy.chown.as_deref(),
            copy.chmod.as_deref()
        ),
        (Some("file"), Some("app"), Some("08080"))
    );
    assert_eq!(copy.exclude, ["*.file"]);
    let Command::Add(add) = &cmds[2] else {
        panic!("{:?}", cmds[2])
    };
    assert_eq!(add.checksum.as_deref(), Some("sha256:file"));
    assert_eq!(
        (add.sources[0].clone(), add.dest.as_str()),
        (CopySource::Path("http://x/file".into()), "//dst/")
    );
    assert_eq!(
        cmds[3],
        Command::Expose(vec!["8080/tcp".into(), "8080/udp".into()])
    );
    assert_eq!(cmds[4], Command::Volume(vec!["/vol".into()]));
    assert_eq!(cmds[5], Command::User("app".into()));
    assert_eq!(cmds[6], Command::StopSignal("SIGTERM".into()));
    assert_eq!(cmds[7], Command::Label(pairs(&[("app", "/dst")])));
    // Left as written: the shell or the container runtime deals with these.
    assert_eq!(cmds[8], Command::Cmd(ShellOrExec::Shell("echo $D".into())));
    assert_eq!(
        cmds[9],
        Command::Entrypoint(ShellOrExec::Exec(vec!["$D".into()]))
    );
    assert_eq!(cmds[10], Command::Shell(vec!["/bin/$U".into()]));
    assert_eq!(cmds[11], Command::Onbuild("RUN $D".into()));
    let Command::Healthcheck(Healthcheck::Cmd { test, .. }) = &cmds[12] else {
        panic!("{:?}", cmds[12])
    };
    assert_eq!(test, &["CMD-SHELL".to_string(), "$D".to_string()]);
}

#[test]
fn copy_heredocs_are_sources_expanded_unless_quoted() {
    let text =
        "FROM a\nENV X=ex\nCOPY <<one <<'two' /dst/\n$X\none\n$X\ntwo\nRUN <<EOF\necho $X\nEOF\n";
    let d = eval(text);
    let cmds = expanded(&d, 0);
    let Command::Copy(copy) = &cmds[1] else {
        panic!("{:?}", cmds[1])
    };
    let contents: Vec<(&str, &str)> = copy
        .sources
        .iter()
        .map(|s| match s {
            CopySource::Heredoc(h) => (h.name.as_str(), h.content.as_str()),
            CopySource::Path(p) => (p.as_str(), ""),
        })
        .collect();
    assert_eq!(contents, [("one", "ex\n"), ("two", "$X\n")]);
    let Command::Run(run) = &cmds[2] else {
        panic!("{:?}", cmds[2])
    };
    assert_eq!(
        run.heredocs[0].content, "echo $X\n",
        "RUN heredocs are for the shell"
    );
    assert!(run.heredoc_script().is_some());
    assert_eq!(run.shell_script().as_deref(), Some("<<EOF\necho $X\nEOF"));
    assert_eq!(
        d.stages[0].instructions[2].location,
        Location {
            start_line: 8,
            end_line: 10
        }
    );
}

#[test]
fn instruction_shapes() {
    let text = "# syntax=docker/dockerfile:1.7-labs\nFROM a\nRUN --mount=type=cache,target=/c --network=none --security=insecure [\"make\", \"all\"]\n\
                ADD --link --keep-git-dir=true --unpack=false --chmod=644 a b /d\n\
                COPY --parents --link=false [\"a b\", \"/d\"]\n\
                HEALTHCHECK --interval=5s --timeout=3s --start-period=1m --start-interval=500ms --retries=3 CMD [\"ok\"]\n\
                HEALTHCHECK NONE\nARG A B=b\nMAINTAINER me <me@x>\nCMD\n";
    let d = eval(text);
    let ins = &d.stages[0].instructions;
    let Command::Run(run) = &ins[0].command else {
        panic!()
    };
    assert_eq!(
        run.cmd,
        ShellOrExec::Exec(vec!["make".into(), "all".into()])
    );
    assert_eq!(
        (run.mounts[0].kind, run.mounts[0].target.as_str()),
        (MountKind::Cache, "/c")
    );
    assert_eq!(
        (run.network.as_deref(), run.security.as_deref()),
        (Some("none"), Some("insecure"))
    );
    let Command::Add(add) = &ins[1].command else {
        panic!()
    };
    assert!(add.link && add.keep_git_dir && add.unpack == Some(false));
    assert_eq!((add.sources.len(), add.chmod.as_deref()), (2, Some("644")));
    let Command::Copy(copy) = &ins[2].command else {
        panic!()
    };
    assert!(copy.parents && !copy.link && copy.json);
    assert_eq!(copy.sources, [CopySource::Path("a b".into())]);
    let Command::Healthcheck(Healthcheck::Cmd {
        test,
        interval,
        timeout,
        start_period,
        start_interval,
        retries,
    }) = &ins[3].command
    else {
        panic!()
    };
    assert_eq!(test, &["CMD".to_string(), "ok".to_string()]);
    use std::time::Duration;
    assert_eq!(
        (
            *interval,
            *timeout,
            *start_period,
            *start_interval,
            *retries
        ),
        (
            Some(Duration::from_secs(5)),
            Some(Duration::from_secs(3)),
            Some(Duration::from_secs(60)),
            Some(Duration::from_millis(500)),
            Some(3)
        )
    );
    assert_eq!(ins[4].command, Command::Healthcheck(Healthcheck::None));
    let d = eval("FROM a\nHEALTHCHECK --interval= CMD x\n");
    let Command::Healthcheck(Healthcheck::Cmd { interval, .. }) =
        &d.stages[0].instructions[0].command
    else {
        panic!()
    };
    assert_eq!(*interval, None, "an empty duration means unset");
    assert_eq!(
        ins[5].command,
        Command::Arg(vec![("A".into(), None), ("B".into(), Some("b".into()))])
    );
    assert_eq!(ins[6].command, Command::Maintainer("me <me@x>".into()));
    assert_eq!(ins[7].command, Command::Cmd(ShellOrExec::Exec(vec![])));
    assert_eq!(
        ins[0].original,
        "RUN --mount=type=cache,target=/c --network=none --security=insecure [\"make\", \"all\"]"
    );
}

#[test]
fn unknown_and_bad_flags_are_located_errors() {
    assert_eq!(
        err("FROM a\nCOPY --form=x a b\n"),
        "Dockerfile:2:6: unknown flag: --form (did you mean --from?)"
    );
    assert_eq!(
        err("FROM a\nADD --from=x a b\n"),
        "Dockerfile:2:5: unknown flag: --from"
    );
    assert_eq!(
        err("FROM --platfrom=x a\n"),
        "Dockerfile:1:6: unknown flag: --platfrom (did you mean --platform?)"
    );
    assert_eq!(
        err("FROM a\nENV --x=1 A=b\n"),
        "Dockerfile:2:5: unknown flag: --x"
    );
    assert!(
        err("FROM a\nCOPY --link=maybe a b\n").contains("expecting boolean value for flag --link")
    );
    assert!(err("FROM a\nCOPY --from a b\n").contains("missing a value on flag: --from"));
    assert!(err("FROM a\nRUN --network=bridge x\n").contains("unsupported network mode"));
    assert!(err("FROM a\nRUN --mount=type=bind x\n").contains("invalid --mount"));
    assert!(err("FROM a\nHEALTHCHECK --interval=5 CMD x\n").contains("missing unit"));
    assert!(
        err("FROM a\nHEALTHCHECK --retries=-1 CMD x\n").contains("--retries cannot be negative")
    );
}

#[test]
fn bad_instructions_are_located_errors() {
    for (text, want) in [
        (
            "FROM a b\n",
            "Dockerfile:1:1: FROM requires either one or three arguments",
        ),
        (
            "FROM a AS 1x\n",
            "Dockerfile:1:1: invalid name for build stage: \"1x\"",
        ),
        (
            "RUN x\nFROM a\n",
            "Dockerfile:1:1: RUN is not allowed before the first FROM",
        ),
        ("ARG A\n", "Dockerfile:1:1: no build stage"),
        (
            "FROM a\nONBUILD ONBUILD RUN x\n",
            "Dockerfile:2:1: chaining ONBUILD",
        ),
        (
            "FROM a\nONBUILD FROM b\n",
            "Dockerfile:2:1: FROM isn't allowed as an ONBUILD trigger",
        ),
        (
            "FROM a\nSHELL sh -c\n",
            "Dockerfile:2:1: SHELL requires the arguments to be in JSON form",
        ),
        (
            "FROM a\nHEALTHCHECK NONE x\n",
            "Dockerfile:2:1: HEALTHCHECK NONE takes no arguments",
        ),
        (
            "FROM a\nHEALTHCHECK CMD\n",
            "Dockerfile:2:1: missing command after HEALTHCHECK CMD",
        ),
        (
            "FROM a\nHEALTHCHECK PING x\n",
            "Dockerfile:2:1: unknown type \"PING\" in HEALTHCHECK",
        ),
        (
            "FROM a\nCOPY a\n",
            "Dockerfile:2:1: COPY requires at least two arguments",
        ),
        (
            "FROM a\nUSER\n",
            "Dockerfile:2:1: USER requires exactly one argument",
        ),
        (
            "FROM a\nEXPOSE\n",
            "Dockerfile:2:1: EXPOSE requires at least one argument",
        ),
        (
            "FROM a\nRUN\n",
            "Dockerfile:2:1: RUN requires at least one argument",
        ),
        (
            "FROM a\nARG\n",
            "Dockerfile:2:1: ARG requires at least one argument",
        ),
        (
            "FROM a\nLABEL\n",
            "Dockerfile:2:1: LABEL requires at least one argument",
        ),
        (
            "ARG E=\nFROM $E\n",
            "Dockerfile:2:1: base name ($E) should not be blank",
        ),
        (
            "FROM ${A:?needs}\n",
            "Dockerfile:1:1: failed to process \"${A:?needs}\": A: needs",
        ),
    ] {
        let got = err(text);
        assert!(
            got.starts_with(want),
            "{text:?}: got {got:?}, want {want:?}"
        );
    }
}

#[test]
fn expansion_errors_point_at_the_instruction() {
    let d = eval("FROM a\nRUN ok\nWORKDIR ${DIR:?must be set}\n");
    let e = d.stages[0].expand(&[]).unwrap_err();
    assert_eq!(e.line(), Some(3));
    assert!(
        e.to_string()
            .starts_with("Dockerfile:3:1: failed to process"),
        "{e}"
    );
    assert!(e.to_string().ends_with("DIR: must be set"), "{e}");
    let snippet = e.snippet().unwrap_or_default();
    assert!(snippet.contains("WORKDIR ${DIR:?must be set}"), "{snippet}");
}

#[test]
fn onbuild_triggers_parse_into_instructions() {
    let ins = parse_triggers(&["RUN make".into(), "COPY . /src".into()], '\\')
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(&ins[0].command, Command::Run(r) if r.cmd == ShellOrExec::Shell("make".into()))
    );
    assert!(matches!(&ins[1].command, Command::Copy(_)));
    assert!(parse_triggers(&["FROM x".into()], '\\').is_err());
    // A heredoc trigger keeps its body and parses back to the same RUN.
    let d = eval("FROM a\nONBUILD RUN <<EOF\necho hi\nEOF\n");
    let Command::Onbuild(trigger) = &d.stages[0].instructions[0].command else {
        panic!()
    };
    assert_eq!(trigger, "RUN <<EOF\necho hi\nEOF");
    let ins = parse_triggers(std::slice::from_ref(trigger), '\\').unwrap_or_else(|e| panic!("{e}"));
    let Command::Run(run) = &ins[0].command else {
        panic!()
    };
    assert_eq!(run.heredocs[0].content, "echo hi\n");
    assert!(parse_triggers(&[], '\\').unwrap_or_default().is_empty());
}

#[test]
fn a_stage_built_from_a_stage_inherits_its_args_like_buildkit() {
    let d = eval(
        "FROM a AS one\nARG X=1\nARG Y\nFROM one AS two\nRUN echo $X\nFROM two\nENV Z=$X\nFROM a\nENV W=$X\n",
    );
    let Command::Run(run) = &expanded(&d, 1)[0] else {
        panic!("not a RUN")
    };
    assert_eq!(run.build_args, pairs(&[("X", "1")]));
    // Handed on through every stage in the chain, and never to an unrelated stage.
    assert_eq!(expanded(&d, 2)[0], Command::Env(pairs(&[("Z", "1")])));
    assert_eq!(expanded(&d, 3)[0], Command::Env(pairs(&[("W", "")])));
    // The base's env, where it has the name, wins over the inherited arg.
    let two = d.stages[1]
        .expand(&pairs(&[("X", "env")]))
        .unwrap_or_else(|e| panic!("{e}"));
    let Command::Run(run) = &two[0].command else {
        panic!("not a RUN")
    };
    assert!(run.build_args.is_empty(), "{:?}", run.build_args);
}

#[test]
fn expose_ranges_become_ports_and_bad_ports_are_located_errors() {
    let d = eval("FROM a\nEXPOSE 80 8000-8002/UDP 1.2.3.4:80:81/sctp\n");
    assert_eq!(
        expanded(&d, 0)[0],
        Command::Expose(
            // In the order of the words as written, sorted (BuildKit's parser sorts them).
            ["81/sctp", "80/tcp", "8000/udp", "8001/udp", "8002/udp"]
                .map(String::from)
                .to_vec()
        )
    );
    for (text, message) in [
        (
            "FROM a\nEXPOSE notaport\n",
            "Dockerfile:2:1: invalid containerPort: notaport",
        ),
        (
            "FROM a\nEXPOSE 80/quic\n",
            "Dockerfile:2:1: invalid proto: quic",
        ),
        (
            "FROM a\nEXPOSE 90-80\n",
            "Dockerfile:2:1: invalid range specified for containerPort: 90-80",
        ),
        (
            "FROM a\nEXPOSE 70000\n",
            "Dockerfile:2:1: invalid containerPort: 70000",
        ),
    ] {
        let d = eval(text);
        let e = d.stages[0].expand(&[]).expect_err(text);
        assert_eq!(e.to_string(), message, "{text}");
    }
}
