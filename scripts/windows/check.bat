@echo off
rem A Nagios-style check as a batch file for scripts/windows-check: `check.bat CODE` prints
rem one status line and exits with CODE; `check.bat hang` starts check_exit.exe for 60 s
rem (a grandchild of hbc's worker) to show that a timeout kills the whole tree.
if "%1"=="hang" (
    "%~dp0check_exit.exe" 0 60
    exit /b 0
)
echo BATCH CHECK - exit %1 ^| value=%1;1;2
exit /b %1
