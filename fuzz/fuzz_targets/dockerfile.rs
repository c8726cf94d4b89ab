//! The Dockerfile front end on arbitrary input: parse, dump, evaluate, expand. Any panic,
//! overflow or hang is a bug; errors are fine.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for escape in ['\\', '`'] {
        let env = |name: &str| match name {
            "A" => Some("a b".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        let _ = tare_dockerfile::expand_word(&text, &env, escape);
        let _ = tare_dockerfile::expand_words(&text, &env, escape);
    }
    let Ok(ast) = tare_dockerfile::parse(&text, "Dockerfile") else {
        return;
    };
    let _ = ast.dump();
    let build_args: BTreeMap<String, String> = [
        ("A".to_string(), "1".to_string()),
        ("UNUSED".to_string(), "x".to_string()),
    ]
    .into();
    let Ok(dockerfile) = tare_dockerfile::evaluate(&ast, &build_args, None) else {
        return;
    };
    let base_env = vec![("PATH".to_string(), "/bin".to_string())];
    for stage in &dockerfile.stages {
        if let Ok(instructions) = stage.expand(&base_env) {
            for ins in instructions {
                if let tare_dockerfile::Command::Run(run) = &ins.command {
                    let _ = run.shell_script();
                    let _ = run.heredoc_script();
                }
            }
        }
    }
});
