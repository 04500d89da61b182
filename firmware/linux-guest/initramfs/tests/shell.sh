# vmmtest=shell: interactive shell on the console; exit status = VM exit code.
sh
