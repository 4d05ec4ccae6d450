/**
 * The POSIX sh program `mount-sync.ts` runs inside a sandbox, as the sandbox user, to read a
 * mount out or put one back. It needs only what the images have (busybox or Debian):
 * `find`, `stat`, `date`, `xargs`, `tar`, `mv`, `chmod`, `rm`.
 *
 * `capture MOUNT MARKER [SECONDS]`: prints `T <seconds>` (SECONDS when given: the host's clock,
 * read before the exec started, when it is the sandbox's own kernel clock; else `date`), the
 * listing (see `tree-listing.ts`) and MARKER, then reads one line on stdin: `0` ends (nothing to
 * read, so no `xargs` or `tar` is started), `1` is followed by NUL-separated `./paths`, of which
 * it writes one tar to stdout.
 *
 * `restore MOUNT STAGE MARKER COMMIT`: removes stage directories an interrupted restore left,
 * prints `T 0`, the listing and MARKER, then extracts the tar on stdin into the mount: it holds
 * only STAGE/ (a `plan` file, `t/` the staged entries, `o/` where replaced ones go, and
 * `complete` last: an archive cut short swaps nothing). Then it swaps by renames as the plan says
 * (`tree-plan.ts`). A failure while staging leaves the mount untouched (exit 11); a failure
 * while swapping moves everything back (exit 12, 13 if even that failed). On success it prints
 * OK, and removes the stage directory when COMMIT is 1; otherwise the swap is kept undoable
 * until `commit` or `undo` (several mounts restored as one).
 *
 * Every path it handles starts with `.`, so no name is ever taken for an option. It is written
 * to work as one line (every command ends with `;` or a keyword), so it can be handed to a
 * pre-started launcher (`launcher.ts`), which takes one line.
 */
export const STAGE_PREFIX = '.director-restore-';

const LINES = [
  'mode=$1; M=$2;',
  'cd "$M" || { echo "cannot enter $M" >&2; exit 3; };',
  'list() {',
  `  printf 'T %s\\n' "$1";`,
  `  find . -xdev \\( -path './${STAGE_PREFIX}*' -prune \\) -o -exec stat -c '%f %i %h %s %Y %Z %n' {} + || return 1;`,
  '};',
  'exists() { [ -e "$1" ] || [ -L "$1" ]; };',
  'clean() { rm -rf "$1" 2>/dev/null || { chmod -R u+rwx "$1" 2>/dev/null; rm -rf "$1"; }; };',
  'mvto() {',
  '  src=$1; dst=$2; shift 2;',
  '  [ $# -gt 0 ] || return 0;',
  '  for x do set -- "$@" "$src/$x"; shift; done;',
  '  mv -f "$@" "$dst/";',
  '};',
  'swap() {',
  "  set --; d=''; k=R; ndone=0; cdone=0; failed='';",
  '  while IFS= read -r line; do',
  '    op=${line%% *}; arg=${line#* };',
  '    case $op in',
  '      D|E)',
  '        if [ -n "$d" ]; then',
  '          if [ "$k" = R ]; then mvto "$d" "$S/o/$d" "$@" || { failed=R; return 1; };',
  '          else mvto "$S/t/$d" "$d" "$@" || { failed=A; return 1; }; fi;',
  '        fi;',
  '        set --; k=R;',
  '        [ "$op" = E ] && break;',
  '        d=$arg; ndone=$((ndone + 1)) ;;',
  '      R) set -- "$@" "$arg" ;;',
  '      A)',
  '        if [ "$k" = R ]; then mvto "$d" "$S/o/$d" "$@" || { failed=R; return 1; }; set --; k=A; fi;',
  '        set -- "$@" "$arg" ;;',
  '    esac;',
  '  done < "$S/plan";',
  '  while IFS= read -r line; do',
  '    case $line in',
  "      'C '*)",
  '        rest=${line#C }; m=${rest%% *}; rest=${rest#* }; dir=${rest#* };',
  '        chmod "$m" "$dir" || { failed=C; return 1; };',
  '        cdone=$((cdone + 1)) ;;',
  '    esac;',
  '  done < "$S/plan";',
  '};',
  'undo() {',
  '  bad=0; i=0;',
  '  while IFS= read -r line; do',
  '    case $line in',
  "      'C '*)",
  '        [ "$i" -lt "$cdone" ] || break;',
  '        i=$((i + 1)); rest=${line#C }; rest=${rest#* }; old=${rest%% *}; dir=${rest#* };',
  '        chmod "$old" "$dir" || bad=1 ;;',
  '    esac;',
  '  done < "$S/plan";',
  '  for pass in A R; do',
  "    i=0; d='';",
  '    while IFS= read -r line; do',
  '      op=${line%% *}; arg=${line#* };',
  '      case $op in',
  '        D) i=$((i + 1)); [ "$i" -le "$ndone" ] || break; d=$arg ;;',
  '        E) break ;;',
  '        A)',
  '          [ "$pass" = A ] || continue;',
  '          [ "$i" -lt "$ndone" ] || [ "$failed" != R ] || continue;',
  '          if ! exists "$S/t/$d/$arg" && exists "$d/$arg"; then mv -f "$d/$arg" "$S/t/$d/" || bad=1; fi ;;',
  '        R)',
  '          [ "$pass" = R ] || continue;',
  '          if exists "$S/o/$d/$arg"; then mv -f "$S/o/$d/$arg" "$d/" || bad=1; fi ;;',
  '      esac;',
  '    done < "$S/plan";',
  '  done;',
  '  return $bad;',
  '};',
  'case $mode in',
  '  capture)',
  '    list "${4:-$(date +%s)}" || exit 4;',
  `    printf '%s\\n' "$3";`,
  '    IFS= read -r more || exit 0;',
  '    [ "$more" = 1 ] || exit 0;',
  '    exec xargs -0 -r tar -c -f - ;;',
  '  restore)',
  '    S=./$3; commit=$5;',
  `    for old in ./${STAGE_PREFIX}*; do exists "$old" && clean "$old"; done;`,
  '    list 0 || exit 4;',
  `    printf '%s\\n' "$4";`,
  '    exists "$S" && { echo \'FAIL stage\'; exit 10; };',
  '    if ! tar -x -o -f - || [ ! -f "$S/complete" ]; then exists "$S" && clean "$S"; echo \'FAIL stage\'; exit 11; fi;',
  '    if swap; then',
  '      [ "$commit" = 1 ] && clean "$S";',
  '      echo OK; exit 0;',
  '    fi;',
  '    if undo; then clean "$S"; echo "REVERTED $failed"; exit 12; fi;',
  '    echo "REVERT-FAILED $failed"; exit 13 ;;',
  '  commit)',
  '    S=./$3; exists "$S" && clean "$S"; echo OK ;;',
  '  undo)',
  "    S=./$3; ndone=999999999; cdone=999999999; failed='';",
  '    exists "$S" || { echo \'FAIL gone\'; exit 14; };',
  '    if undo; then clean "$S"; echo REVERTED; exit 0; fi;',
  "    echo 'REVERT-FAILED'; exit 13 ;;",
  '  *) echo "unknown mode $mode" >&2; exit 2 ;;',
  'esac',
];

/** The program, on one line. */
export const TREE_SCRIPT = LINES.map((l) => l.trim()).join(' ');
