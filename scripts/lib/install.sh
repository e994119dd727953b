# Sourced by scripts/test and scripts/demo: installs, on a Debian machine, what they need when
# it is missing.
#
#   install_missing "DEBIAN PACKAGE…" "PIP REQUIREMENT…" "PYTHON MODULE…"
#
# Debian packages go in with apt-get (as root, or through sudo), Python packages with pip (the
# modules are what is imported to tell whether they are there). With LIFEBOAT_NO_INSTALL=1 it
# only names what is missing and exits 2.

install_missing() {
    local -a packages python_packages python_modules missing=() sudo=() pip
    read -r -a packages <<<"$1"
    read -r -a python_packages <<<"$2"
    read -r -a python_modules <<<"$3"

    local package
    for package in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
    done
    if ((${#missing[@]})); then
        if [[ ${LIFEBOAT_NO_INSTALL:-} == 1 ]]; then
            echo "missing Debian packages: ${missing[*]} (apt-get install ${missing[*]})" >&2
            exit 2
        fi
        if ((EUID != 0)); then
            command -v sudo >/dev/null || { echo "installing ${missing[*]} needs root: run as root, or apt-get install ${missing[*]}" >&2; exit 2; }
            sudo=(sudo)
        fi
        echo "== installing Debian packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        "${sudo[@]}" apt-get update -qq
        "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
    # The Debian postgresql and redis-server packages start servers of their own; the tests
    # and the demo start theirs on free loopback ports and do not need them.

    ((${#python_modules[@]})) || return 0
    if ! python3 -c "import $(IFS=,; echo "${python_modules[*]}")" 2>/dev/null; then
        if [[ ${LIFEBOAT_NO_INSTALL:-} == 1 ]]; then
            echo "missing Python packages: pip install ${python_packages[*]}" >&2
            exit 2
        fi
        echo "== installing Python packages: ${python_packages[*]}"
        pip=(python3 -m pip install --quiet --disable-pip-version-check)
        ((EUID == 0)) && pip+=(--root-user-action=ignore)
        # Debian marks its Python as externally managed; these are tools, not system ones.
        "${pip[@]}" "${python_packages[@]}" 2>/dev/null || "${pip[@]}" --break-system-packages "${python_packages[@]}"
    fi
}
