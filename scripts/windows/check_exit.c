/* A Nagios-style check as a Windows .exe for scripts/windows-check: `check_exit CODE
 * [SECONDS]` sleeps SECONDS (default 0), prints one status line with performance data
 * and exits with CODE. */
#include <stdio.h>
#include <stdlib.h>
#include <windows.h>
int main(int argc, char **argv) {
    int code = argc > 1 ? atoi(argv[1]) : 0;
    int seconds = argc > 2 ? atoi(argv[2]) : 0;
    if (seconds > 0) Sleep((DWORD)seconds * 1000);
    printf("EXE CHECK - exit %d | value=%d;1;2\n", code, code);
    return code;
}
