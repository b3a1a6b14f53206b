//! The body of a child process of the compare bench: which measurement's
//! child role to run, from what the parent put in [`CHILD_ENV`](crate::CHILD_ENV).

use std::path::PathBuf;

use crate::CHILD_PATH_ENV;
use crate::blackboard::board_writer;
use crate::by_size::{cell_echo, cell_hammer};
use crate::common::child::parent_gone;
use crate::floors::{futex_child, spin_child};
use crate::iox::{iox_echo, iox_fanout_child};
use crate::peers::{shm_hammer, uds_echo};
use crate::placement::pin_child;
use crate::pubsub::pubsub_echo;
use crate::scaling::{scale_reader, scale_writer};
use crate::tails::{tail_publisher, tail_reader, tail_waiter};
use crate::wake::{wake_echo, wake_fanout};

/// The body of a child process, `spec` being what `ctl::spawn` set in
/// [`CHILD_ENV`].
pub fn child_main(spec: &str) -> Result<(), Box<dyn std::error::Error>> {
    let mut parts = spec.split(':');
    let role = parts.next().ok_or("empty child spec")?;
    let parent: libc::pid_t = parts.next().ok_or("no parent pid")?.parse()?;
    let args: Vec<i64> = parts.map(str::parse).collect::<Result<_, _>>()?;
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number and no pointer.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
    if parent_gone(parent) {
        return Ok(()); // The parent died before the signal was armed.
    }
    pin_child()?;
    let arg = |i: usize| -> Result<i32, Box<dyn std::error::Error>> {
        Ok(i32::try_from(*args.get(i).ok_or("missing argument")?)?)
    };
    let path = || -> Result<PathBuf, Box<dyn std::error::Error>> {
        Ok(std::env::var_os(CHILD_PATH_ENV)
            .ok_or("no path given")?
            .into())
    };
    macro_rules! sized {
        ($size:expr, $f:ident($($a:expr),*)) => {
            match $size {
                64 => $f::<64>($($a),*),
                4096 => $f::<4096>($($a),*),
                65536 => $f::<65536>($($a),*),
                n => Err(format!("no value of {n} bytes").into()),
            }
        };
    }
    match role {
        "futex" => futex_child(parent, arg(0)?),
        "spin" => spin_child(parent, arg(0)?),
        "cell_hammer" => sized!(arg(0)?, cell_hammer(arg(1)?, arg(2)?)),
        "shm_hammer" => sized!(arg(0)?, shm_hammer(arg(1)?, &path()?)),
        "cell_echo" => sized!(arg(0)?, cell_echo(parent, arg(1)? != 0, arg(2)?, arg(3)?)),
        "uds_echo" => sized!(arg(0)?, uds_echo(&path()?)),
        "scale_reader" => scale_reader(arg(0)?, arg(1)?, arg(2)? as usize),
        "scale_writer" => scale_writer(arg(0)?, arg(1)?),
        "wake_echo" => wake_echo(parent, arg(0)?, arg(1)?, arg(2)?),
        "wake_fanout" => wake_fanout(arg(0)?, arg(1)?, arg(2)?),
        "iox_echo" => iox_echo(parent, arg(0)?),
        "iox_fanout" => iox_fanout_child(parent, arg(0)?, arg(1)?),
        "board_writer" => sized!(arg(0)?, board_writer(parent, arg(1)?)),
        "pubsub_echo" => sized!(arg(0)?, pubsub_echo(parent)),
        "tail_reader" => sized!(arg(0)?, tail_reader(arg(1)?, arg(2)?)),
        "tail_publisher" => tail_publisher(arg(0)?, arg(1)?, arg(2)? as usize),
        "tail_waiter" => tail_waiter(parent, arg(0)?, arg(1)?, arg(2)? as usize, arg(3)?),
        _ => Err(format!("unknown role {role:?}").into()),
    }
}
