//! `plugin_strict_modes` on Windows: who may change a plugin file. Loading a DLL runs its
//! code as hbc's account (often SYSTEM), so the file and every folder above it must be
//! owned by, and writable only by, Administrators, SYSTEM, TrustedInstaller or hbc's own
//! account, as `trust.rs` demands of owners and mode bits on Unix.
//!
//! This file reads the owner and DACL of each object (`GetNamedSecurityInfoW`) and hbc's
//! account (its process token); `trust_acl.rs` decides, and is tested on every system.
//! `plugin_strict_modes: false` turns the check off (development only).

use std::ffi::OsStr;
use std::os::windows::ffi::OsStrExt;
use std::path::Path;

use windows_sys::Win32::Foundation::{CloseHandle, LocalFree, ERROR_SUCCESS, HANDLE};
use windows_sys::Win32::Security::Authorization::{
    ConvertSidToStringSidW, GetNamedSecurityInfoW, SE_FILE_OBJECT,
};
use windows_sys::Win32::Security::{
    GetAce, GetTokenInformation, IsValidSid, LookupAccountSidW, TokenUser, ACE_HEADER, ACL,
    DACL_SECURITY_INFORMATION, OWNER_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR, PSID,
    SID_NAME_USE, TOKEN_QUERY, TOKEN_USER,
};
use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};

use crate::loader::Rejection;
use crate::trust_acl::{fault, Ace, Descriptor, Object};

const REMEDY: &str = "only Administrators, SYSTEM, TrustedInstaller and hbc's account may \
write, delete or change the permissions of a plugin file and of its folders (icacls, as \
above), or set plugin_strict_modes: false for development";

/// The longest account or domain name `LookupAccountSidW` is asked for, in UTF-16 units
/// (Windows limits both to 256).
const NAME_MAX: usize = 256;

/// Checks `path` and the folders above it (both as named and with links resolved) for
/// the running account.
pub fn check(path: &Path) -> Result<(), Rejection> {
    let untrusted = |reason: String| Rejection {
        reason: format!("refused (plugin_strict_modes): {reason}"),
        remedy: REMEDY,
        retry: false,
    };
    let me =
        current_user().map_err(|e| untrusted(format!("cannot read hbc's own account: {e}")))?;
    let named = std::path::absolute(path)
        .map_err(|e| untrusted(format!("cannot resolve {}: {e}", path.display())))?;
    let real = std::fs::canonicalize(path)
        .map_err(|e| untrusted(format!("cannot resolve {}: {e}", path.display())))?;

    let judge = |p: &Path, object: Object| -> Result<(), Rejection> {
        let shown = display(p);
        let desc = descriptor(p)
            .map_err(|e| untrusted(format!("cannot read the permissions of {shown}: {e}")))?;
        match fault(&desc, object, &me) {
            None => Ok(()),
            Some(f) => Err(untrusted(f.describe(object, &shown, &me, &account_name))),
        }
    };
    judge(&real, Object::File)?;
    // The folders above the file as named and, when links lead elsewhere, as resolved.
    let mut paths = vec![&real];
    if !display(&named).eq_ignore_ascii_case(&display(&real)) {
        paths.insert(0, &named);
    }
    for file in paths {
        for (depth, dir) in file.ancestors().skip(1).enumerate() {
            if dir.as_os_str().is_empty() {
                continue;
            }
            let object = if depth == 0 {
                Object::PluginFolder
            } else {
                Object::FolderAbove
            };
            judge(dir, object)?;
        }
    }
    Ok(())
}

/// A path as people write it: without the `\\?\` prefix that `canonicalize` adds.
fn display(path: &Path) -> String {
    let s = path.display().to_string();
    if let Some(unc) = s.strip_prefix(r"\\?\UNC\") {
        format!(r"\\{unc}")
    } else if let Some(rest) = s.strip_prefix(r"\\?\") {
        rest.to_string()
    } else {
        s
    }
}

fn wide(s: &OsStr) -> Vec<u16> {
    s.encode_wide().chain(Some(0)).collect()
}

/// A security descriptor from `GetNamedSecurityInfoW`, freed when dropped.
struct LocalSd(PSECURITY_DESCRIPTOR);

impl Drop for LocalSd {
    fn drop(&mut self) {
        // SAFETY: the descriptor was allocated by GetNamedSecurityInfoW (LocalAlloc) and
        // is freed once.
        unsafe {
            LocalFree(self.0);
        }
    }
}

/// The owner and DACL of a file or folder.
fn descriptor(path: &Path) -> std::io::Result<Descriptor> {
    let name = wide(path.as_os_str());
    let mut owner: PSID = std::ptr::null_mut();
    let mut dacl: *mut ACL = std::ptr::null_mut();
    let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    // SAFETY: `name` is NUL-terminated; the out pointers are valid; owner and dacl point
    // into `sd`, which lives (LocalSd) until this function returns.
    let err = unsafe {
        GetNamedSecurityInfoW(
            name.as_ptr(),
            SE_FILE_OBJECT,
            OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION,
            &mut owner,
            std::ptr::null_mut(),
            &mut dacl,
            std::ptr::null_mut(),
            &mut sd,
        )
    };
    if err != ERROR_SUCCESS {
        return Err(std::io::Error::from_raw_os_error(err as i32));
    }
    let _sd = LocalSd(sd);
    let owner = if owner.is_null() {
        None
    } else {
        Some(sid_string(owner)?)
    };
    let dacl = if dacl.is_null() {
        None
    } else {
        Some(entries(dacl)?)
    };
    Ok(Descriptor { owner, dacl })
}

/// The entries of a DACL returned by the system (so well formed; each SID is still
/// bounded by its entry's size before it is read).
fn entries(dacl: *mut ACL) -> std::io::Result<Vec<Ace>> {
    let bad = |i: u16| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("access list entry {i} is malformed"),
        )
    };
    // SAFETY: `dacl` points to a valid ACL inside a live security descriptor.
    let count = unsafe { (*dacl).AceCount };
    let mut out = Vec::with_capacity(usize::from(count));
    for i in 0..count {
        let mut ace: *mut core::ffi::c_void = std::ptr::null_mut();
        // SAFETY: `i` is below the list's AceCount; GetAce writes a pointer into the ACL.
        if unsafe { GetAce(dacl, u32::from(i), &mut ace) } == 0 || ace.is_null() {
            return Err(std::io::Error::last_os_error());
        }
        let base = ace.cast::<u8>();
        // SAFETY: every ACE starts with an ACE_HEADER followed by a 4-byte mask.
        let (header, mask) = unsafe {
            (
                base.cast::<ACE_HEADER>().read_unaligned(),
                base.add(4).cast::<u32>().read_unaligned(),
            )
        };
        let size = usize::from(header.AceSize);
        // The SID follows the mask; object entries put flags and up to two GUIDs first.
        let sid_at = match header.AceType {
            0x05 | 0x06 | 0x0B | 0x0C => {
                if size < 12 {
                    return Err(bad(i));
                }
                // SAFETY: the entry holds at least 12 bytes (checked).
                let flags = unsafe { base.add(8).cast::<u32>().read_unaligned() };
                12 + 16 * usize::from(flags & 1 != 0) + 16 * usize::from(flags & 2 != 0)
            }
            0x00 | 0x01 | 0x09 | 0x0A => 8,
            // Not an allow or deny type (no such entry belongs in a DACL): kept without
            // its SID, it grants nothing (trust_acl).
            _ => {
                out.push(Ace {
                    kind: header.AceType,
                    flags: header.AceFlags,
                    mask,
                    sid: String::new(),
                });
                continue;
            }
        };
        // A SID is 8 bytes plus 4 per sub-authority (their count is its second byte).
        if sid_at + 8 > size {
            return Err(bad(i));
        }
        // SAFETY: sid_at + 8 <= size (checked).
        let subs = usize::from(unsafe { base.add(sid_at + 1).read() });
        if sid_at + 8 + 4 * subs > size {
            return Err(bad(i));
        }
        // SAFETY: the whole SID lies inside the entry (checked).
        let sid = unsafe { base.add(sid_at) } as PSID;
        out.push(Ace {
            kind: header.AceType,
            flags: header.AceFlags,
            mask,
            sid: sid_string(sid)?,
        });
    }
    Ok(out)
}

/// `S-1-5-32-545` for a SID.
fn sid_string(sid: PSID) -> std::io::Result<String> {
    // SAFETY: `sid` points to a SID inside a live descriptor or token buffer.
    if unsafe { IsValidSid(sid) } == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "an invalid SID",
        ));
    }
    let mut text: *mut u16 = std::ptr::null_mut();
    // SAFETY: a valid SID; the string is LocalAlloc'd, read up to its NUL and freed once.
    unsafe {
        if ConvertSidToStringSidW(sid, &mut text) == 0 || text.is_null() {
            return Err(std::io::Error::last_os_error());
        }
        let mut len = 0;
        while *text.add(len) != 0 {
            len += 1;
        }
        let s = String::from_utf16_lossy(std::slice::from_raw_parts(text, len));
        LocalFree(text.cast());
        Ok(s)
    }
}

/// `DOMAIN\name` for a SID string, when the system knows the account.
fn account_name(sid: &str) -> Option<String> {
    use windows_sys::Win32::Security::Authorization::ConvertStringSidToSidW;
    let text = wide(OsStr::new(sid));
    let mut psid: PSID = std::ptr::null_mut();
    // SAFETY: `text` is NUL-terminated; the SID is LocalAlloc'd and freed below.
    if unsafe { ConvertStringSidToSidW(text.as_ptr(), &mut psid) } == 0 || psid.is_null() {
        return None;
    }
    let mut name = [0u16; NAME_MAX];
    let mut domain = [0u16; NAME_MAX];
    let (mut name_len, mut domain_len) = (NAME_MAX as u32, NAME_MAX as u32);
    let mut usage: SID_NAME_USE = 0;
    // SAFETY: buffers and their lengths in UTF-16 units; `psid` is valid until freed.
    let ok = unsafe {
        let ok = LookupAccountSidW(
            std::ptr::null(),
            psid,
            name.as_mut_ptr(),
            &mut name_len,
            domain.as_mut_ptr(),
            &mut domain_len,
            &mut usage,
        );
        LocalFree(psid);
        ok
    };
    if ok == 0 {
        return None;
    }
    let name = String::from_utf16_lossy(name.get(..name_len as usize)?);
    let domain = String::from_utf16_lossy(domain.get(..domain_len as usize)?);
    if name.is_empty() {
        None
    } else if domain.is_empty() {
        Some(name)
    } else {
        Some(format!("{domain}\\{name}"))
    }
}

/// The SID of the account hbc runs as (its process token's user).
fn current_user() -> std::io::Result<String> {
    let mut token: HANDLE = std::ptr::null_mut();
    // SAFETY: the pseudo-handle of this process; the token handle is closed below.
    if unsafe { OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) } == 0 {
        return Err(std::io::Error::last_os_error());
    }
    // TOKEN_USER plus the SID it points to (at most 68 bytes); u64s keep it aligned.
    let mut buf = [0u64; 16];
    let mut len = 0u32;
    // SAFETY: the buffer and its size in bytes; the token is open.
    let ok = unsafe {
        let ok = GetTokenInformation(
            token,
            TokenUser,
            buf.as_mut_ptr().cast(),
            std::mem::size_of_val(&buf) as u32,
            &mut len,
        );
        CloseHandle(token);
        ok
    };
    if ok == 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: GetTokenInformation filled the buffer with a TOKEN_USER whose SID pointer
    // points into the same buffer.
    let user = unsafe { buf.as_ptr().cast::<TOKEN_USER>().read() };
    sid_string(user.User.Sid)
}
