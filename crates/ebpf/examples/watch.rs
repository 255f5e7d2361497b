//! Prints every captured record until interrupted: `cargo run --example watch`.

use std::time::Duration;

use ebpf::{Capture, Options};

fn main() {
    let mut capture = match Capture::start(&Options::default()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("watch: {e}");
            std::process::exit(1);
        }
    };
    loop {
        let polled = capture.poll(Duration::from_millis(500), &mut |r| println!("{r:?}"));
        if let Err(e) = polled {
            eprintln!("watch: {e}");
            std::process::exit(1);
        }
    }
}
