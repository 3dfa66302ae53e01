# bash completion for vfctl: candidates come from vfctl itself (vfctl/completion.py), so
# commands, options, PF names, VF ids, VM ids and paths follow the installed version and host.
_vfctl() {
    local cur prev words cword
    if declare -F _init_completion >/dev/null; then
        _init_completion -n : || return    # PCI addresses hold ':'
    else
        words=("${COMP_WORDS[@]}"); cword=$COMP_CWORD; cur=${COMP_WORDS[COMP_CWORD]}
    fi
    local out
    out=$(_VFCTL_COMPLETE=words _VFCTL_CWORD=$((cword - 1)) "${words[0]}" "${words[@]:1}" 2>/dev/null)
    case $out in
        __files__) COMPREPLY=($(compgen -f -- "$cur")); compopt -o filenames 2>/dev/null; return ;;
        __dirs__) COMPREPLY=($(compgen -d -- "$cur")); compopt -o filenames 2>/dev/null; return ;;
    esac
    local IFS=$'\n'
    COMPREPLY=($(compgen -W "$out" -- "$cur"))
    declare -F __ltrim_colon_completions >/dev/null && __ltrim_colon_completions "$cur"
}
complete -F _vfctl vfctl
