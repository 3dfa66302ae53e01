# fish completion for vfctl: candidates come from vfctl itself (vfctl/completion.py).
function __vfctl_complete
    set -l tokens (commandline -opc)
    set -l cur (commandline -ct)
    set -l out (env _VFCTL_COMPLETE=words _VFCTL_CWORD=(math (count $tokens) - 1) $tokens[1] $tokens[2..-1] $cur 2>/dev/null)
    switch "$out[1]"
        case __files__
            __fish_complete_path $cur
        case __dirs__
            __fish_complete_directories $cur
        case '*'
            printf '%s\n' $out
    end
end
complete -c vfctl -f -a '(__vfctl_complete)'
