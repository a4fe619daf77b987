/* bcryptprimitives.dll for wine 8, which lacks ProcessPrng (Rust >= 1.78's std imports it
 * for HashMap seeds): forwards to advapi32's RtlGenRandom. Only for running under wine in
 * scripts/windows-check; real Windows (10 and later) has the real one. */
#include <windows.h>
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length) {
    return SystemFunction036(data, (ULONG)length);
}
