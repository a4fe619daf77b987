//! The decision of the Windows `plugin_strict_modes` check (`trust_windows.rs`), kept apart
//! from the system calls so that it is tested on every system: given the owner and the
//! access list (DACL) of a file or folder, as `GetNamedSecurityInfoW` returns them, who
//! besides Administrators, SYSTEM, TrustedInstaller and hbc's own account may change what
//! hbc would load from there?
//!
//! The rules follow `trust.rs` (Unix) in Windows' terms:
//! - the owner must be one of those accounts (an owner may always rewrite the access list);
//! - a NULL DACL grants everything to everyone;
//! - an ALLOW entry that applies to the object itself (not `INHERIT_ONLY`) must not give
//!   anyone else a right to write, append, delete, change permissions or take ownership
//!   (generic write and generic all included); for folders also to add or delete entries;
//! - as Unix accepts a sticky `/tmp` *above* the plugin folder, a folder above the plugin
//!   folder may let others add entries (`FILE_ADD_FILE`, `FILE_ADD_SUBDIRECTORY`: `C:\`
//!   lets Authenticated Users create folders, `C:\ProgramData` lets Users create files),
//!   but not delete or rename ours (`DELETE`, `FILE_DELETE_CHILD`) nor change its
//!   permissions. The plugin folder itself may not let others add entries.
//!
//! DENY entries never make an object acceptable: Windows applies entries in order and a
//! deny for one group does not cover a member of another, so a grant counts whatever
//! denies sit beside it (a check that errs on the side of refusing).

/// SIDs whose write rights are trusted, besides hbc's own account.
pub const TRUSTED: [(&str, &str); 3] = [
    ("S-1-5-32-544", "Administrators"),
    ("S-1-5-18", "SYSTEM"),
    (
        "S-1-5-80-956008885-3544889285-2229669280-1440627307-1945880574-3553546025",
        "TrustedInstaller",
    ),
];

/// `OWNER RIGHTS`: an entry for it applies to whoever owns the object (checked first).
const OWNER_RIGHTS: &str = "S-1-3-4";
/// `CREATOR OWNER` and `CREATOR GROUP` are placeholders replaced when an entry is
/// inherited; no token holds them, so an entry for them grants nothing on the object.
const CREATOR: [&str; 2] = ["S-1-3-0", "S-1-3-1"];

/// ACE types that grant (`ACCESS_ALLOWED_*`: plain, object, callback, callback object).
/// A callback (conditional) entry may grant, so it counts as granting.
const ALLOW_TYPES: [u8; 4] = [0x00, 0x05, 0x09, 0x0B];
/// `INHERIT_ONLY_ACE`: the entry is only copied to children, it does not apply here.
pub const INHERIT_ONLY_ACE: u8 = 0x08;
/// `INHERITED_ACE`: the entry was copied from the folder above.
pub const INHERITED_ACE: u8 = 0x10;

/// The rights that let someone change what hbc would load, with their names for files and
/// for folders (the same bit has a different name on each), and whether a folder above
/// the plugin folder may grant it.
const RIGHTS: [(u32, Option<&str>, &str, bool); 8] = [
    (0x0000_0002, Some("FILE_WRITE_DATA"), "FILE_ADD_FILE", true),
    (
        0x0000_0004,
        Some("FILE_APPEND_DATA"),
        "FILE_ADD_SUBDIRECTORY",
        true,
    ),
    // FILE_DELETE_CHILD means nothing on a file.
    (0x0000_0040, None, "FILE_DELETE_CHILD", false),
    (0x0001_0000, Some("DELETE"), "DELETE", false),
    (0x0004_0000, Some("WRITE_DAC"), "WRITE_DAC", false),
    (0x0008_0000, Some("WRITE_OWNER"), "WRITE_OWNER", false),
    (0x1000_0000, Some("GENERIC_ALL"), "GENERIC_ALL", false),
    (0x4000_0000, Some("GENERIC_WRITE"), "GENERIC_WRITE", false),
];

/// One access-control entry as read from a DACL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ace {
    /// `AceType` (0 allow, 1 deny, 5 object allow, ...).
    pub kind: u8,
    /// `AceFlags` (inheritance).
    pub flags: u8,
    /// The access mask.
    pub mask: u32,
    /// The SID as a string (`S-1-5-32-545`); empty for an entry type without one.
    pub sid: String,
}

/// The owner and DACL of one file or folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// The owner's SID; `None` when the descriptor has none.
    pub owner: Option<String>,
    /// The entries; `None` for a NULL DACL (no list at all: everyone has every right),
    /// which is not the same as an empty list (nobody but the owner has any).
    pub dacl: Option<Vec<Ace>>,
}

/// Where the object sits relative to the plugin file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Object {
    /// The plugin file itself.
    File,
    /// The folder holding the plugin file.
    PluginFolder,
    /// A folder further up.
    FolderAbove,
}

/// What makes an object untrusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The owner is not a trusted account (or there is none).
    Owner(Option<String>),
    /// A NULL DACL.
    NullDacl,
    /// Allow entries give `sid` these rights (named for the object's kind).
    Grants {
        sid: String,
        rights: Vec<&'static str>,
        /// Whether one of those entries was inherited from the folder above.
        inherited: bool,
    },
}

/// Whether `sid` may write: one of [`TRUSTED`] or hbc's own account `me`.
pub fn is_trusted(sid: &str, me: &str) -> bool {
    sid == me || TRUSTED.iter().any(|(t, _)| *t == sid)
}

/// The first fault of an object, if any: the owner, a NULL DACL, then the first SID
/// (in list order) that allow entries give a refused right, with all its refused rights.
pub fn fault(desc: &Descriptor, object: Object, me: &str) -> Option<Fault> {
    match &desc.owner {
        Some(owner) if is_trusted(owner, me) => {}
        other => return Some(Fault::Owner(other.clone())),
    }
    let Some(dacl) = &desc.dacl else {
        return Some(Fault::NullDacl);
    };
    let applies = |ace: &&Ace| {
        ALLOW_TYPES.contains(&ace.kind)
            && ace.flags & INHERIT_ONLY_ACE == 0
            && !is_trusted(&ace.sid, me)
            && ace.sid != OWNER_RIGHTS
            && !CREATOR.contains(&ace.sid.as_str())
            && refused_mask(ace.mask, object) != 0
    };
    let first = dacl.iter().find(applies)?;
    let same: Vec<&Ace> = dacl
        .iter()
        .filter(applies)
        .filter(|a| a.sid == first.sid)
        .collect();
    let mask = same.iter().fold(0, |m, a| m | refused_mask(a.mask, object));
    Some(Fault::Grants {
        sid: first.sid.clone(),
        rights: names(mask, object),
        inherited: same.iter().any(|a| a.flags & INHERITED_ACE != 0),
    })
}

/// The bits of `mask` that `object` may not grant to others.
fn refused_mask(mask: u32, object: Object) -> u32 {
    RIGHTS
        .iter()
        .filter(|(_, file, _, above_ok)| match object {
            Object::File => file.is_some(),
            Object::PluginFolder => true,
            Object::FolderAbove => !above_ok,
        })
        .fold(0, |m, (bit, ..)| m | (mask & bit))
}

fn names(mask: u32, object: Object) -> Vec<&'static str> {
    RIGHTS
        .iter()
        .filter(|(bit, ..)| mask & bit != 0)
        .filter_map(|(_, file, folder, _)| match object {
            Object::File => *file,
            _ => Some(*folder),
        })
        .collect()
}

impl Fault {
    /// A sentence about the file or folder at `path` (`the file C:\x.dll grants ...`),
    /// naming SIDs as `name (SID)` where `lookup` knows the account, with the icacls
    /// command that fixes it. `me` is hbc's account, named in the owner message.
    pub fn describe(
        &self,
        object: Object,
        path: &str,
        me: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> String {
        let what = match object {
            Object::File => format!("the file {path}"),
            Object::PluginFolder | Object::FolderAbove => format!("the folder {path}"),
        };
        let who = |sid: &str| match lookup(sid) {
            Some(name) => format!("{name} ({sid})"),
            None => sid.to_string(),
        };
        match self {
            Fault::Owner(owner) => {
                let owner = owner.as_deref().map_or("nobody".to_string(), who);
                format!(
                    "{what} is owned by {owner}, not by Administrators, SYSTEM, \
                     TrustedInstaller or hbc's account {}; to fix: icacls \"{path}\" \
                     /setowner *S-1-5-32-544",
                    who(me)
                )
            }
            Fault::NullDacl => format!(
                "{what} has no access list (a NULL DACL: everyone may write it); to fix: \
                 icacls \"{path}\" /reset"
            ),
            Fault::Grants {
                sid,
                rights,
                inherited,
            } => {
                let read = match object {
                    Object::File => "(RX)",
                    Object::PluginFolder | Object::FolderAbove => "(OI)(CI)(RX)",
                };
                let fix = if *inherited {
                    format!(
                        "icacls \"{path}\" /inheritance:d && icacls \"{path}\" /grant:r *{sid}:{read}"
                    )
                } else {
                    format!("icacls \"{path}\" /grant:r *{sid}:{read}")
                };
                format!(
                    "{what} grants {} to {}{}; to fix: {fix}",
                    rights.join(", "),
                    who(sid),
                    if *inherited {
                        " (an entry inherited from the folder above)"
                    } else {
                        ""
                    }
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &str = "S-1-5-21-1-2-3-1001";
    const USERS: &str = "S-1-5-32-545";
    const EVERYONE: &str = "S-1-1-0";
    const AUTHENTICATED: &str = "S-1-5-11";
    const ADMINS: &str = "S-1-5-32-544";
    const SYSTEM: &str = "S-1-5-18";

    // Masks as Windows stores them (icacls' abbreviations).
    const FULL: u32 = 0x001F_01FF; // F
    const MODIFY: u32 = 0x0013_01BF; // M
    const READ_EXECUTE: u32 = 0x0012_00A9; // RX
    const WRITE: u32 = 0x0000_0116; // W: WD, AD, WEA, WA
    const ADD_ONLY: u32 = 0x0000_0116; // on a folder: WD (add file), AD (add folder), WEA, WA

    fn ace(kind: u8, flags: u8, mask: u32, sid: &str) -> Ace {
        Ace {
            kind,
            flags,
            mask,
            sid: sid.to_string(),
        }
    }
    fn allow(mask: u32, sid: &str) -> Ace {
        ace(0, 0, mask, sid)
    }

    /// A descriptor owned by Administrators with the usual trusted entries plus `extra`.
    fn desc(extra: Vec<Ace>) -> Descriptor {
        let mut dacl = vec![allow(FULL, ADMINS), allow(FULL, SYSTEM), allow(FULL, ME)];
        dacl.extend(extra);
        Descriptor {
            owner: Some(ADMINS.to_string()),
            dacl: Some(dacl),
        }
    }

    fn grants(sid: &str, rights: &[&'static str], inherited: bool) -> Option<Fault> {
        Some(Fault::Grants {
            sid: sid.to_string(),
            rights: rights.to_vec(),
            inherited,
        })
    }

    #[test]
    fn users_write_is_refused() {
        let d = desc(vec![allow(READ_EXECUTE | WRITE, USERS)]);
        assert_eq!(
            fault(&d, Object::File, ME),
            grants(USERS, &["FILE_WRITE_DATA", "FILE_APPEND_DATA"], false)
        );
        assert_eq!(
            fault(&d, Object::PluginFolder, ME),
            grants(USERS, &["FILE_ADD_FILE", "FILE_ADD_SUBDIRECTORY"], false)
        );
    }

    #[test]
    fn users_read_is_accepted() {
        let d = desc(vec![
            allow(READ_EXECUTE, USERS),
            allow(READ_EXECUTE, EVERYONE),
        ]);
        for object in [Object::File, Object::PluginFolder, Object::FolderAbove] {
            assert_eq!(fault(&d, object, ME), None, "{object:?}");
        }
    }

    #[test]
    fn everyone_generic_all_is_refused() {
        let d = desc(vec![allow(0x1000_0000, EVERYONE)]);
        for object in [Object::File, Object::PluginFolder, Object::FolderAbove] {
            assert_eq!(
                fault(&d, object, ME),
                grants(EVERYONE, &["GENERIC_ALL"], false),
                "{object:?}"
            );
        }
        let d = desc(vec![allow(0x4000_0000, EVERYONE)]);
        assert_eq!(
            fault(&d, Object::File, ME),
            grants(EVERYONE, &["GENERIC_WRITE"], false)
        );
    }

    #[test]
    fn authenticated_users_modify_is_refused() {
        let d = desc(vec![ace(0, INHERITED_ACE, MODIFY, AUTHENTICATED)]);
        assert_eq!(
            fault(&d, Object::File, ME),
            grants(
                AUTHENTICATED,
                &["FILE_WRITE_DATA", "FILE_APPEND_DATA", "DELETE"],
                true
            )
        );
        // Above the plugin folder, adding entries is allowed but deleting is not.
        assert_eq!(
            fault(&d, Object::FolderAbove, ME),
            grants(AUTHENTICATED, &["DELETE"], true)
        );
    }

    #[test]
    fn inherit_only_entries_are_ignored() {
        // C:\'s "Authenticated Users:(OI)(CI)(IO)(M)": for children only.
        let d = desc(vec![ace(
            0,
            0x01 | 0x02 | INHERIT_ONLY_ACE,
            MODIFY,
            AUTHENTICATED,
        )]);
        for object in [Object::File, Object::PluginFolder, Object::FolderAbove] {
            assert_eq!(fault(&d, object, ME), None, "{object:?}");
        }
        // The same entry without IO applies.
        let d = desc(vec![ace(0, 0x01 | 0x02, MODIFY, AUTHENTICATED)]);
        assert!(fault(&d, Object::File, ME).is_some());
    }

    #[test]
    fn deny_entries_neither_grant_nor_excuse() {
        // A deny with write rights is not a grant.
        let d = desc(vec![ace(1, 0, FULL, USERS), allow(READ_EXECUTE, USERS)]);
        assert_eq!(fault(&d, Object::File, ME), None);
        // A deny before an allow does not excuse the allow (object deny type 6 too).
        let d = desc(vec![
            ace(1, 0, WRITE, USERS),
            ace(6, 0, WRITE, USERS),
            allow(WRITE, USERS),
        ]);
        assert_eq!(
            fault(&d, Object::File, ME),
            grants(USERS, &["FILE_WRITE_DATA", "FILE_APPEND_DATA"], false)
        );
    }

    #[test]
    fn a_null_dacl_is_refused_an_empty_one_is_not() {
        let d = Descriptor {
            owner: Some(SYSTEM.to_string()),
            dacl: None,
        };
        assert_eq!(fault(&d, Object::FolderAbove, ME), Some(Fault::NullDacl));
        let d = Descriptor {
            owner: Some(SYSTEM.to_string()),
            dacl: Some(vec![]),
        };
        assert_eq!(fault(&d, Object::File, ME), None);
    }

    #[test]
    fn an_owner_other_than_the_trusted_accounts_is_refused() {
        let mut d = desc(vec![]);
        d.owner = Some(USERS.to_string());
        assert_eq!(
            fault(&d, Object::File, ME),
            Some(Fault::Owner(Some(USERS.to_string())))
        );
        d.owner = None;
        assert_eq!(fault(&d, Object::File, ME), Some(Fault::Owner(None)));
        // hbc's own account and TrustedInstaller may own it.
        d.owner = Some(ME.to_string());
        assert_eq!(fault(&d, Object::File, ME), None);
        d.owner = Some(TRUSTED[2].0.to_string());
        assert_eq!(fault(&d, Object::File, ME), None);
        // A stranger's account is refused, even with the same entries.
        assert!(fault(&desc(vec![]), Object::File, "S-1-5-21-9-9-9-1002").is_some());
    }

    #[test]
    fn administrators_and_system_full_control_is_accepted() {
        let d = Descriptor {
            owner: Some(ADMINS.to_string()),
            dacl: Some(vec![
                allow(FULL, ADMINS),
                allow(FULL, SYSTEM),
                allow(0x1000_0000, ADMINS),
                allow(READ_EXECUTE, USERS),
            ]),
        };
        for object in [Object::File, Object::PluginFolder, Object::FolderAbove] {
            assert_eq!(fault(&d, object, "S-1-5-21-9-9-9-1002"), None, "{object:?}");
        }
    }

    #[test]
    fn folders_above_may_let_others_add_but_not_delete() {
        // C:\ProgramData's "Users:(CI)(WD,AD,WEA,WA)", inherited by C:\ProgramData\hbc.
        let d = desc(vec![
            allow(READ_EXECUTE, USERS),
            ace(0, 0x02 | INHERITED_ACE, ADD_ONLY, USERS),
        ]);
        assert_eq!(fault(&d, Object::FolderAbove, ME), None);
        assert_eq!(
            fault(&d, Object::PluginFolder, ME),
            grants(USERS, &["FILE_ADD_FILE", "FILE_ADD_SUBDIRECTORY"], true)
        );
        let d = desc(vec![allow(0x40, USERS)]);
        assert_eq!(
            fault(&d, Object::FolderAbove, ME),
            grants(USERS, &["FILE_DELETE_CHILD"], false)
        );
        // FILE_DELETE_CHILD means nothing on a file.
        assert_eq!(fault(&d, Object::File, ME), None);
    }

    #[test]
    fn owner_rights_creator_owner_and_callback_entries() {
        // OWNER RIGHTS stands for the (trusted) owner; CREATOR OWNER matches no one.
        let d = desc(vec![allow(FULL, OWNER_RIGHTS), allow(FULL, "S-1-3-0")]);
        assert_eq!(fault(&d, Object::File, ME), None);
        // A conditional (callback) allow counts as a grant; an audit-type entry does not.
        let d = desc(vec![ace(2, 0, FULL, USERS), ace(9, 0, 0x0001_0000, USERS)]);
        assert_eq!(
            fault(&d, Object::File, ME),
            grants(USERS, &["DELETE"], false)
        );
    }

    #[test]
    fn the_first_offending_sid_is_reported_with_all_its_rights() {
        let d = desc(vec![
            allow(0x0004_0000, USERS),
            allow(0x0001_0000, EVERYONE),
            ace(0, INHERITED_ACE, 0x0008_0000, USERS),
        ]);
        assert_eq!(
            fault(&d, Object::File, ME),
            grants(USERS, &["WRITE_DAC", "WRITE_OWNER"], true)
        );
    }

    #[test]
    fn messages_name_the_object_the_account_the_right_and_the_fix() {
        let lookup = |sid: &str| (sid == USERS).then(|| "BUILTIN\\Users".to_string());
        let path = r"C:\ProgramData\hbc\plugins\x.dll";
        let f = grants(USERS, &["FILE_WRITE_DATA"], false).expect("a fault");
        assert_eq!(
            f.describe(Object::File, path, ME, &lookup),
            r#"the file C:\ProgramData\hbc\plugins\x.dll grants FILE_WRITE_DATA to BUILTIN\Users (S-1-5-32-545); to fix: icacls "C:\ProgramData\hbc\plugins\x.dll" /grant:r *S-1-5-32-545:(RX)"#
        );
        let f = grants(EVERYONE, &["DELETE"], true).expect("a fault");
        let m = f.describe(Object::PluginFolder, "C:\\p", ME, &lookup);
        assert!(
            m.contains("to S-1-1-0 (an entry inherited from the folder above)"),
            "{m}"
        );
        assert!(
            m.starts_with("the folder C:\\p grants DELETE")
                && m.ends_with(r#"/inheritance:d && icacls "C:\p" /grant:r *S-1-1-0:(OI)(CI)(RX)"#),
            "{m}"
        );
        let m = Fault::Owner(Some(USERS.to_string())).describe(Object::File, "f", ME, &lookup);
        assert_eq!(
            m,
            "the file f is owned by BUILTIN\\Users (S-1-5-32-545), not by Administrators, \
             SYSTEM, TrustedInstaller or hbc's account S-1-5-21-1-2-3-1001; to fix: icacls \
             \"f\" /setowner *S-1-5-32-544"
        );
        let m = Fault::NullDacl.describe(Object::FolderAbove, "d", ME, &lookup);
        assert!(m.contains("NULL DACL") && m.contains("/reset"), "{m}");
    }
}
