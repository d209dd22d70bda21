# A tiny, offline, nixpkgs-shaped package set for tests.
#
# Everything is built from the static binaries Debian ships (busybox-static,
# bash-static) plus small generated scripts and data files. Builds take well
# under a second each, are deterministic, and have real runtime references
# between packages (Nix finds them by scanning outputs for store-path hashes).
#
# Usage: import ./nix/pkgs { system = "x86_64-linux"; }
#
# The host files it is made of can be taken from elsewhere, with the same
# store paths as long as the files are the same (builtins.path hashes only the
# filtered contents and the name): `hostBin` must hold busybox and bash-static,
# `hostCerts` ca-certificates.crt. A channel-style tarball of this set carries
# copies of them, so that a Nix without these host files (the builder image)
# evaluates the same store paths as the host that filled the binary cache.
{ system ? builtins.currentSystem
, hostBin ? /usr/bin
, hostCerts ? /etc/ssl/certs
, ...
}:

let
  # Directories holding only the static binary, so that argv[0]'s basename is
  # "busybox" and applets dispatch as "$bb/busybox cp ...".
  bbSrc = builtins.path {
    path = hostBin;
    name = "busybox-static";
    filter = p: t: baseNameOf p == "busybox";
  };
  bashSrc = builtins.path {
    path = hostBin;
    name = "bash-static";
    filter = p: t: baseNameOf p == "bash-static";
  };

  # Run `script` with busybox sh; all busybox applets are on PATH.
  # Every other attribute becomes an environment variable (store paths in
  # them become build inputs through their string context).
  mk = { name, script, ... }@args:
    derivation ((builtins.removeAttrs args [ "script" ]) // {
      inherit name system;
      builder = "${bbSrc}/busybox";
      args = [
        "sh" "-e" "-c"
        ''
          ${bbSrc}/busybox mkdir -p "$TMPDIR/.bb"
          ${bbSrc}/busybox --install -s "$TMPDIR/.bb"
          export PATH="$TMPDIR/.bb"
          umask 022
          ${script}
        ''
      ];
    });

  # Files are passed through environment variables file0, file1, ...
  mkData' = { pname, version, files, executables ? [ ] }:
    let names = builtins.attrNames files; in
    mk ({
      name = "${pname}-${version}";
      inherit version;
      script = builtins.concatStringsSep "\n" (builtins.genList (i:
        let f = builtins.elemAt names i; in ''
          mkdir -p "$out/$(dirname '${f}')"
          printf '%s' "$file${toString i}" > "$out/${f}"
          chmod ${if builtins.elem f executables then "0555" else "0444"} "$out/${f}"
        '') (builtins.length names));
    } // builtins.listToAttrs (builtins.genList (i: {
      name = "file${toString i}";
      value = files.${builtins.elemAt names i};
    }) (builtins.length names)));

  # A "tool": bin/<name> scripts run by bashInteractive, plus optional data
  # files. `deps` are recorded in the script so they become runtime references.
  mkTool = { pname, version, bins, deps ? [ ], files ? { } }:
    mkData' {
      inherit pname version;
      executables = map (b: "bin/${b}") (builtins.attrNames bins);
      files = files // builtins.listToAttrs (map (b: {
        name = "bin/${b}";
        value = ''
          #!${bashInteractive}/bin/bash
          # ${pname} ${version} (offline test package)
          # runtime dependencies:${builtins.concatStringsSep "" (map (d: " ${d}") deps)}
          ${bins.${b}}
        '';
      }) (builtins.attrNames bins));
    };



  versionScript = line: ''
    case "''${1:-}" in
      --version|-v|-V|version) echo "${line}" ;;
      *) echo "${line}"; echo "(offline test build; args: $*)" ;;
    esac
  '';

  busybox = mk {
    name = "busybox-1.35.0";
    version = "1.35.0";
    src = bbSrc;
    script = ''
      mkdir -p "$out/bin"
      cp "$src/busybox" "$out/bin/busybox"
      chmod 0555 "$out/bin/busybox"
    '';
  };

  bashInteractive = mk {
    name = "bash-interactive-5.2";
    version = "5.2";
    src = bashSrc;
    script = ''
      mkdir -p "$out/bin"
      cp "$src/bash-static" "$out/bin/bash"
      chmod 0555 "$out/bin/bash"
      ln -s bash "$out/bin/sh"
    '';
  };

  coreutilsApplets = [
    "basename" "cat" "chmod" "chown" "cp" "cut" "date" "dirname" "du" "echo"
    "env" "expr" "false" "head" "id" "ln" "ls" "md5sum" "mkdir" "mktemp" "mv"
    "printf" "pwd" "readlink" "realpath" "rm" "rmdir" "seq" "sha256sum"
    "sleep" "sort" "stat" "tail" "tee" "test" "touch" "tr" "true" "uname"
    "uniq" "wc" "whoami" "yes"
  ];

  coreutils = mk {
    name = "coreutils-9.99";
    version = "9.99";
    bb = busybox;
    applets = coreutilsApplets;
    script = ''
      mkdir -p "$out/bin"
      for a in $applets; do
        ln -s "$bb/bin/busybox" "$out/bin/$a"
      done
    '';
  };

  zlib = mkData' {
    pname = "zlib"; version = "1.3.1";
    files = {
      "lib/libz.so.1" = "zlib 1.3.1 (placeholder shared object)\n";
      "include/zlib.h" = "#define ZLIB_VERSION \"1.3.1\"\n";
      "lib/pkgconfig/zlib.pc" = "Name: zlib\nVersion: 1.3.1\n";
    };
  };

  openssl = mkData' {
    pname = "openssl"; version = "3.0.99";
    files = {
      "lib/libssl.so.3" = "OpenSSL 3.0.99 libssl (placeholder)\n";
      "lib/libcrypto.so.3" = "OpenSSL 3.0.99 libcrypto (placeholder)\n";
      # References zlib (compression support), like a real build would.
      "lib/pkgconfig/libcrypto.pc" = "Name: libcrypto\nVersion: 3.0.99\nRequires.private: ${zlib}/lib/pkgconfig/zlib.pc\n";
    };
  };

  ncurses = mkData' {
    pname = "ncurses"; version = "6.4";
    files = {
      "lib/libncursesw.so.6" = "ncurses 6.4 (placeholder)\n";
      "share/terminfo/x/xterm" = "xterm|xterm terminal emulator (placeholder)\n";
      "share/terminfo/v/vt100" = "vt100|dec vt100 (placeholder)\n";
    };
  };

  cacert =
    let
      hostBundle = hostCerts + "/ca-certificates.crt";
      fallback = builtins.toFile "ca-bundle.crt" ''
        -----BEGIN CERTIFICATE-----
        MIIBszCCAVmgAwIBAgIUT2ZmbGluZVRlc3RDQU9mZmxpbmVUZXN0Q0EwCgYIKoZI
        zj0EAwIwGTEXMBUGA1UEAwwOT2ZmbGluZSBUZXN0IENBMB4XDTI0MDEwMTAwMDAw
        -----END CERTIFICATE-----
      '';
      src =
        if builtins.pathExists hostBundle
        then builtins.path {
          path = hostCerts;
          name = "host-ca-bundle";
          filter = p: t: baseNameOf p == "ca-certificates.crt";
        } + "/ca-certificates.crt"
        else fallback;
    in
    mk {
      name = "nss-cacert-3.99";
      version = "3.99";
      inherit src;
      script = ''
        mkdir -p "$out/etc/ssl/certs"
        cp "$src" "$out/etc/ssl/certs/ca-bundle.crt"
        chmod 0444 "$out/etc/ssl/certs/ca-bundle.crt"
      '';
    };

  iana-etc = mkData' {
    pname = "iana-etc"; version = "20240101";
    files = {
      "etc/services" = ''
        ftp             21/tcp
        ssh             22/tcp
        domain          53/tcp
        domain          53/udp
        http            80/tcp          www
        https           443/tcp
      '';
      "etc/protocols" = ''
        ip      0       IP
        icmp    1       ICMP
        tcp     6       TCP
        udp     17      UDP
      '';
    };
  };

  moreutils = mkTool {
    pname = "moreutils"; version = "0.69";
    deps = [ coreutils ];
    bins = {
      sponge = ''
        # soak up stdin, then write it to the file (or stdout)
        tmp="$(${coreutils}/bin/cat)"
        if [ -n "''${1:-}" ]; then printf '%s\n' "$tmp" > "$1"; else printf '%s\n' "$tmp"; fi
      '';
      ts = ''
        while IFS= read -r line; do printf '%s %s\n' "$(${coreutils}/bin/date '+%b %d %H:%M:%S')" "$line"; done
      '';
    };
  };

  nano = mkTool {
    pname = "nano"; version = "7.2";
    deps = [ ncurses ];
    bins.nano = versionScript " GNU nano, version 7.2-offline";
  };

  curl = mkTool {
    pname = "curl"; version = "8.99.0";
    deps = [ openssl zlib ];
    bins.curl = versionScript "curl 8.99.0-offline (x86_64-pc-linux-gnu) libcurl/8.99.0 OpenSSL/3.0.99 zlib/1.3.1";
  };

  git = mkTool {
    pname = "git"; version = "2.99.0";
    deps = [ zlib openssl curl coreutils ];
    bins.git = versionScript "git version 2.99.0-offline";
  };

  htop = mkTool {
    pname = "htop"; version = "3.99.0";
    deps = [ ncurses ];
    bins.htop = versionScript "htop 3.99.0-offline";
  };

  hello = mkTool {
    pname = "hello"; version = "2.12.1";
    bins.hello = ''
      case "''${1:-}" in
        --version) echo "hello (GNU hello) 2.12.1-offline" ;;
        *) echo "Hello, world!" ;;
      esac
    '';
  };

  jq = mkTool {
    pname = "jq"; version = "1.7.1";
    bins.jq = versionScript "jq-1.7.1-offline";
  };

  libX11 = mkData' {
    pname = "libX11"; version = "1.8.7";
    files = {
      "lib/libX11.so.6" = "libX11 1.8.7 (placeholder)\n";
    };
  };

  xev = mkTool {
    pname = "xev"; version = "1.2.5";
    deps = [ libX11 ];
    bins.xev = versionScript "xev 1.2.5-offline";
  };

  imageMagick = mkTool {
    pname = "imagemagick"; version = "7.1.1";
    deps = [ zlib ];
    bins = {
      magick = versionScript "Version: ImageMagick 7.1.1-offline";
      convert = versionScript "Version: ImageMagick 7.1.1-offline (convert)";
    };
  };

  _7zz = mkTool {
    pname = "7zz"; version = "23.01";
    bins."7zz" = versionScript "7-Zip (z) 23.01-offline (x64)";
  };

  # bin/a and bin/b are the same inode (two hard links).
  hardlinks = mk {
    name = "hardlinks-1.0";
    version = "1.0";
    sh = bashInteractive;
    script = ''
      mkdir -p "$out/bin"
      printf '#!%s/bin/bash\necho "hardlinked script: $(basename "$0")"\n' "$sh" > "$out/bin/a"
      chmod 0555 "$out/bin/a"
      ln "$out/bin/a" "$out/bin/b"
    '';
  };

in
{
  inherit
    busybox bashInteractive coreutils moreutils nano cacert iana-etc
    zlib openssl ncurses curl git htop hello jq imageMagick _7zz hardlinks;

  xorg = { inherit xev libX11; };

  # For negative tests of the resolver: these are not resolvable packages.
  brokenPackage = throw "brokenPackage is marked as broken";
  notADerivation = "just a string";
}
