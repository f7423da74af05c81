//! The shell (first process): prompt `$ `, runs programs by name with arguments, a trailing
//! `&` runs one in the background; finished background children are reaped before each prompt.
//! `exit [CODE]` ends the shell (the kernel then starts a new one; its children run on).
#![no_std]
#![no_main]

use user::*;

entry!(main);

fn reap() {
    while let Ok(Some((pid, code))) = wait(None, true) {
        println!("[{pid}] done, exit {code}");
    }
}

fn main(_args: Args) -> i32 {
    println!("Leakscope shell: type `ls` for the programs");
    let mut buf = [0u8; 256];
    loop {
        reap();
        print!("$ ");
        let n = match read_line(&mut buf) {
            Ok(n) => n,
            Err(e) => {
                println!("shell: read: {}", err_name(e));
                continue;
            }
        };
        let line = core::str::from_utf8(&buf[..n]).unwrap_or("").trim();
        let (line, background) = match line.strip_suffix('&') {
            Some(rest) => (rest.trim_end(), true),
            None => (line, false),
        };
        let mut words = [""; 16];
        let mut count = 0;
        for w in line.split(' ').filter(|w| !w.is_empty()) {
            if count == words.len() {
                break;
            }
            words[count] = w;
            count += 1;
        }
        if count == 0 {
            continue;
        }
        let name = words[0];
        if name == "exit" {
            return words[1..count]
                .first()
                .and_then(|c| parse_u64(c))
                .map_or(0, |c| c as i32);
        }
        match spawn(name, &words[..count]) {
            Ok(pid) if background => println!("[{pid}] {name} running in the background"),
            Ok(pid) => match wait(Some(pid), false) {
                Ok(Some((_, 0))) => {}
                Ok(Some((_, code))) => println!("shell: {name} exited with {code}"),
                Ok(None) => {}
                Err(e) => println!("shell: wait: {}", err_name(e)),
            },
            Err(ENOENT) => println!("shell: {name}: no such program"),
            Err(e) => println!("shell: {name}: {}", err_name(e)),
        }
    }
}
