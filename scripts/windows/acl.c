/* Reads and changes a file's security descriptor for scripts/windows-check (wine has no
 * working icacls: it prints nothing). Uses the same calls as hbc's trust check.
 *   acl show PATH              owner SID, then one line per ACE: type flags mask SID
 *                              ("null dacl" when there is none)
 *   acl grant PATH SID MASK    adds an explicit ACCESS_ALLOWED ACE (MASK in hex)
 *   acl null PATH              sets a NULL DACL (everyone has every right)
 *   acl owner PATH SID         sets the owner
 * Exits 0 on success, 1 with a message on failure. */
#include <windows.h>
#include <aclapi.h>
#include <sddl.h>
#include <stdio.h>
#include <stdlib.h>
#include <wchar.h>

static int fail(const char *what, DWORD err) {
    fprintf(stderr, "acl: %s failed: error %lu\n", what, (unsigned long)err);
    return 1;
}

static void print_sid(PSID sid) {
    LPWSTR s = NULL;
    if (sid && ConvertSidToStringSidW(sid, &s)) {
        wprintf(L"%ls", s);
        LocalFree(s);
    } else {
        wprintf(L"?");
    }
}

static int show(LPCWSTR path) {
    PSID owner = NULL;
    PACL dacl = NULL;
    PSECURITY_DESCRIPTOR sd = NULL;
    DWORD err = GetNamedSecurityInfoW(path, SE_FILE_OBJECT,
                                      OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION,
                                      &owner, NULL, &dacl, NULL, &sd);
    if (err != ERROR_SUCCESS) return fail("GetNamedSecurityInfoW", err);
    wprintf(L"owner ");
    print_sid(owner);
    wprintf(L"\n");
    if (!dacl) {
        wprintf(L"null dacl\n");
    } else {
        for (DWORD i = 0; i < dacl->AceCount; i++) {
            ACE_HEADER *h;
            if (!GetAce(dacl, i, (LPVOID *)&h)) return fail("GetAce", GetLastError());
            ACCESS_ALLOWED_ACE *a = (ACCESS_ALLOWED_ACE *)h;
            wprintf(L"ace %u 0x%02x 0x%08lx ", h->AceType, h->AceFlags, (unsigned long)a->Mask);
            if (h->AceType <= 1 || h->AceType == 9 || h->AceType == 10)
                print_sid((PSID)&a->SidStart);
            else
                wprintf(L"-");
            wprintf(L"\n");
        }
    }
    LocalFree(sd);
    return 0;
}

static int sid_from(LPCWSTR text, PSID *sid) {
    if (!ConvertStringSidToSidW(text, sid)) return fail("ConvertStringSidToSidW", GetLastError());
    return 0;
}

static int grant(LPCWSTR path, LPCWSTR sid_text, DWORD mask) {
    PSID sid;
    PACL old = NULL, new_acl = NULL;
    PSECURITY_DESCRIPTOR sd = NULL;
    if (sid_from(sid_text, &sid)) return 1;
    DWORD err = GetNamedSecurityInfoW(path, SE_FILE_OBJECT, DACL_SECURITY_INFORMATION, NULL,
                                      NULL, &old, NULL, &sd);
    if (err != ERROR_SUCCESS) return fail("GetNamedSecurityInfoW", err);
    EXPLICIT_ACCESS_W ea;
    ZeroMemory(&ea, sizeof ea);
    ea.grfAccessPermissions = mask;
    ea.grfAccessMode = GRANT_ACCESS;
    ea.grfInheritance = NO_INHERITANCE;
    ea.Trustee.TrusteeForm = TRUSTEE_IS_SID;
    ea.Trustee.ptstrName = (LPWSTR)sid;
    err = SetEntriesInAclW(1, &ea, old, &new_acl);
    if (err != ERROR_SUCCESS) return fail("SetEntriesInAclW", err);
    err = SetNamedSecurityInfoW((LPWSTR)path, SE_FILE_OBJECT, DACL_SECURITY_INFORMATION, NULL,
                                NULL, new_acl, NULL);
    if (err != ERROR_SUCCESS) return fail("SetNamedSecurityInfoW", err);
    LocalFree(new_acl);
    LocalFree(sd);
    LocalFree(sid);
    return 0;
}

int wmain(int argc, wchar_t **argv) {
    if (argc == 3 && !wcscmp(argv[1], L"show")) return show(argv[2]);
    if (argc == 5 && !wcscmp(argv[1], L"grant"))
        return grant(argv[2], argv[3], (DWORD)wcstoul(argv[4], NULL, 16));
    if (argc == 3 && !wcscmp(argv[1], L"null")) {
        DWORD err = SetNamedSecurityInfoW(argv[2], SE_FILE_OBJECT, DACL_SECURITY_INFORMATION,
                                          NULL, NULL, NULL, NULL);
        return err == ERROR_SUCCESS ? 0 : fail("SetNamedSecurityInfoW", err);
    }
    if (argc == 4 && !wcscmp(argv[1], L"owner")) {
        PSID sid;
        if (sid_from(argv[3], &sid)) return 1;
        DWORD err = SetNamedSecurityInfoW(argv[2], SE_FILE_OBJECT, OWNER_SECURITY_INFORMATION,
                                          sid, NULL, NULL, NULL);
        LocalFree(sid);
        return err == ERROR_SUCCESS ? 0 : fail("SetNamedSecurityInfoW", err);
    }
    fprintf(stderr, "usage: acl show PATH | grant PATH SID MASK | null PATH | owner PATH SID\n");
    return 2;
}
