//! Running as a Windows service. `hbc --windows-service ARGS...` is what the Service
//! Control Manager starts (`sc.exe create hbc binPath= "C:\...\hbc.exe --windows-service -c
//! C:\ProgramData\hbc\hbc.yaml"`): it connects to the SCM, reports RUNNING, runs hbc with
//! the other arguments, and turns STOP and SHUTDOWN into the same clean stop as a console
//! Ctrl-C. A service has no console, so its log goes to `%ProgramData%\hbc\hbc.log`.

use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::atomic::{AtomicPtr, AtomicU8, Ordering};
use std::sync::OnceLock;

use windows_sys::Win32::Foundation::{ERROR_CALL_NOT_IMPLEMENTED, NO_ERROR};
use windows_sys::Win32::System::Services::{
    RegisterServiceCtrlHandlerExW, SetServiceStatus, StartServiceCtrlDispatcherW,
    SERVICE_ACCEPT_SHUTDOWN, SERVICE_ACCEPT_STOP, SERVICE_CONTROL_INTERROGATE,
    SERVICE_CONTROL_SHUTDOWN, SERVICE_CONTROL_STOP, SERVICE_RUNNING, SERVICE_STATUS,
    SERVICE_STATUS_CURRENT_STATE, SERVICE_STOPPED, SERVICE_STOP_PENDING, SERVICE_TABLE_ENTRYW,
    SERVICE_WIN32_OWN_PROCESS,
};

/// The argument that asks for service mode; it must come first.
pub const FLAG: &str = "--windows-service";

type Run = fn(Vec<OsString>) -> ExitCode;

static RUN: OnceLock<Run> = OnceLock::new();
static HANDLE: AtomicPtr<core::ffi::c_void> = AtomicPtr::new(std::ptr::null_mut());
/// The exit code `run` returned (0 = success), for `dispatch` and the SCM.
static CODE: AtomicU8 = AtomicU8::new(0);

/// True when hbc was started as `hbc --windows-service ...`.
pub fn requested() -> bool {
    std::env::args_os().nth(1).is_some_and(|a| a == FLAG)
}

/// The log file of service mode, opened for appending and made this process's stderr.
pub fn log_to_file() -> std::io::Result<()> {
    use std::os::windows::io::IntoRawHandle;
    let dir = std::env::var_os("ProgramData")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "C:\\ProgramData".into())
        .join("hbc");
    std::fs::create_dir_all(&dir)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("hbc.log"))?;
    // SAFETY: hands the handle over to the process's standard error for good.
    let ok = unsafe {
        windows_sys::Win32::System::Console::SetStdHandle(
            windows_sys::Win32::System::Console::STD_ERROR_HANDLE,
            file.into_raw_handle() as _,
        )
    };
    if ok == 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn report(state: SERVICE_STATUS_CURRENT_STATE, exit_code: u32) {
    let handle = HANDLE.load(Ordering::SeqCst);
    if handle.is_null() {
        return;
    }
    let status = SERVICE_STATUS {
        dwServiceType: SERVICE_WIN32_OWN_PROCESS,
        dwCurrentState: state,
        dwControlsAccepted: if state == SERVICE_RUNNING {
            SERVICE_ACCEPT_STOP | SERVICE_ACCEPT_SHUTDOWN
        } else {
            0
        },
        dwWin32ExitCode: exit_code,
        dwServiceSpecificExitCode: 0,
        dwCheckPoint: 0,
        dwWaitHint: if state == SERVICE_STOP_PENDING {
            10_000
        } else {
            0
        },
    };
    // SAFETY: the handle came from RegisterServiceCtrlHandlerExW; the status is a value.
    unsafe {
        SetServiceStatus(handle, &status);
    }
}

unsafe extern "system" fn handler(
    control: u32,
    _event: u32,
    _data: *mut core::ffi::c_void,
    _context: *mut core::ffi::c_void,
) -> u32 {
    match control {
        SERVICE_CONTROL_STOP | SERVICE_CONTROL_SHUTDOWN => {
            report(SERVICE_STOP_PENDING, 0);
            crate::console::request_stop();
            NO_ERROR
        }
        SERVICE_CONTROL_INTERROGATE => NO_ERROR,
        _ => ERROR_CALL_NOT_IMPLEMENTED,
    }
}

fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain([0]).collect()
}

unsafe extern "system" fn service_main(_argc: u32, _argv: *mut windows_sys::core::PWSTR) {
    let name = wide("hbc");
    // SAFETY: a NUL-terminated name (the SCM ignores it for an own-process service) and a
    // handler of the documented signature.
    let handle =
        unsafe { RegisterServiceCtrlHandlerExW(name.as_ptr(), Some(handler), std::ptr::null()) };
    HANDLE.store(handle, Ordering::SeqCst);
    report(SERVICE_RUNNING, 0);
    let args: Vec<OsString> = std::env::args_os()
        .enumerate()
        .filter(|(i, a)| !(*i == 1 && a == FLAG))
        .map(|(_, a)| a)
        .collect();
    let code = match RUN.get() {
        Some(run) => run(args),
        None => ExitCode::FAILURE,
    };
    let failed = code != ExitCode::SUCCESS;
    CODE.store(u8::from(failed), Ordering::SeqCst);
    report(SERVICE_STOPPED, u32::from(failed));
}

/// Hands the process to the SCM, which calls `run` (with the arguments but the flag) on
/// its service thread; returns when the service has stopped.
pub fn dispatch(run: Run) -> ExitCode {
    let _ = RUN.set(run);
    let mut name = wide("hbc");
    let table = [
        SERVICE_TABLE_ENTRYW {
            lpServiceName: name.as_mut_ptr(),
            lpServiceProc: Some(service_main),
        },
        SERVICE_TABLE_ENTRYW {
            lpServiceName: std::ptr::null_mut(),
            lpServiceProc: None,
        },
    ];
    // SAFETY: a table ending in a null entry, alive for the whole call.
    if unsafe { StartServiceCtrlDispatcherW(table.as_ptr()) } == 0 {
        eprintln!(
            "hbc: error: {FLAG}: not started by the Service Control Manager ({})",
            std::io::Error::last_os_error()
        );
        return ExitCode::from(2);
    }
    ExitCode::from(CODE.load(Ordering::SeqCst))
}
