# Resolve package names to derivations in a package set.
#
# This file is the only interface between the Rust code and Nix. Untrusted
# input (package names, source description) arrives only as JSON data via
#   --argstr request '<json>'
# and is never spliced into Nix code.
#
#   nix-instantiate --eval --strict --json resolve.nix --argstr request "$JSON" -A result
#     => {"found": {"<name>": "/nix/store/...", ...}, "missing": ["<name>", ...]}
#   nix-build resolve.nix --argstr request "$JSON" -A drvs --no-out-link
#     => builds the found packages, prints their out paths
#   nix-instantiate --eval --json resolve.nix --argstr request "$JSON" -A pin
#     => the commit a git source's ref points at now (null for other sources)
#
# Request:
#   { "source": {"type":"path","path":"/abs/dir"}
#             | {"type":"channel","name":"<40-hex nixpkgs commit>"}
#             | {"type":"tarball","url":"https://releases.nixos.org/.../nixexprs.tar.xz"}
#             | {"type":"git","url":"...","ref":"main"?,"rev":"<40 hex>"?},
#     "system": "x86_64-linux",
#     "packages": ["git", "xorg.xev", "imagemagick", "7zz"] }
{ request }:

let
  req = builtins.fromJSON request;

  system = req.system or builtins.currentSystem;

  source = req.source or (throw "resolve.nix: request has no source");

  callPkgs = set:
    if builtins.isFunction set then set { inherit system; } else set;

  isNonEmptyString = v: builtins.isString v && v != "";

  # Values that end up in URLs or git command lines must look sane.
  checked = what: re: v:
    if builtins.isString v && builtins.match re v != null then v
    else throw "resolve.nix: invalid ${what}";

  srcTree =
    if source.type == "path" then
      (if isNonEmptyString (source.path or null)
          && builtins.substring 0 1 source.path == "/"
       then /. + source.path
       else throw "resolve.nix: path source needs an absolute path")
    else if source.type == "channel" then
      builtins.fetchTarball {
        url = "https://github.com/NixOS/nixpkgs/archive/${checked "channel commit" "[0-9a-f]{40}" source.name}.tar.gz";
      }
    else if source.type == "tarball" then
      # A channel's nixexprs.tarball at its release URL (fixed once resolved), or a test
      # package set served the same way.
      builtins.fetchTarball {
        url = checked "tarball url" "(https?|file)://[A-Za-z0-9._~:/@%+=-]+" (source.url or null);
      }
    else if source.type == "git" then gitTree
    else throw "resolve.nix: unknown source type";

  gitArgs = { url = checked "git url" "[A-Za-z0-9/].*" source.url; shallow = true; }
    // (if isNonEmptyString (source.ref or null) then { ref = checked "git ref" "[A-Za-z0-9_][A-Za-z0-9._/+-]*" source.ref; } else { })
    // (if isNonEmptyString (source.rev or null) then { rev = checked "git rev" "[0-9a-f]{40}" source.rev; } else { })
    # A commit asked for without a ref may live on any branch or tag.
    // (if isNonEmptyString (source.rev or null) && !(isNonEmptyString (source.ref or null))
        then { allRefs = true; } else { });

  gitTree = builtins.fetchGit gitArgs;

  pkgs = callPkgs (import srcTree);

  # --- name lookup ---------------------------------------------------------

  upper = [ "A" "B" "C" "D" "E" "F" "G" "H" "I" "J" "K" "L" "M"
            "N" "O" "P" "Q" "R" "S" "T" "U" "V" "W" "X" "Y" "Z" ];
  lower = [ "a" "b" "c" "d" "e" "f" "g" "h" "i" "j" "k" "l" "m"
            "n" "o" "p" "q" "r" "s" "t" "u" "v" "w" "x" "y" "z" ];
  toLower = builtins.replaceStrings upper lower;

  startsWithDigit = s: builtins.match "[0-9].*" s != null;

  # Evaluate `v` to weak head normal form; null if that throws.
  safe = v: let r = builtins.tryEval v; in if r.success then r.value else null;

  # First value among attribute names `ns` of `set` that evaluates, or null.
  firstOk = set: ns:
    let vals = builtins.filter (v: v != null) (map (n: safe (builtins.getAttr n set)) ns);
    in if vals == [ ] then null else builtins.head vals;

  # One level of lookup for component `c`: the exact name (or "_" + c when c
  # starts with a digit), else a case-insensitive match (attrNames order).
  # The case-insensitive scan only runs when there is no exact hit.
  step = set: c:
    if set == null || !(safe (builtins.isAttrs set) == true) then null
    else
      let
        variants = [ c ] ++ (if startsWithDigit c then [ ("_" + c) ] else [ ]);
        exact = firstOk set (builtins.filter (n: builtins.hasAttr n set) variants);
        lowered = map toLower variants;
        fuzzy = firstOk set (builtins.filter (n: builtins.elem (toLower n) lowered)
                                             (builtins.attrNames set));
      in if exact != null then exact else fuzzy;

  components = name: builtins.filter builtins.isString (builtins.split "[.]" name);

  isDrv = v: safe (builtins.isAttrs v && (v.type or null) == "derivation") == true;

  # The derivation for `name`, or null. Forces drvPath/outPath so that
  # broken/unsupported packages (which throw there) count as missing.
  lookup = name:
    let
      comps = components name;
      v = if name == "" || builtins.elem "" comps then null
          else builtins.foldl' step pkgs comps;
      ok = v != null && isDrv v
        && (builtins.tryEval (builtins.seq v.drvPath (builtins.isString v.outPath))).success;
    in if ok then v else null;

  requested = builtins.filter builtins.isString (req.packages or [ ]);

  looked = map (name: { inherit name; drv = lookup name; }) requested;
  foundList = builtins.filter (x: x.drv != null) looked;
  missingList = builtins.filter (x: x.drv == null) looked;

  result = {
    found = builtins.listToAttrs
      (map (x: { name = x.name; value = x.drv.outPath; }) foundList);
    missing = map (x: x.name) missingList;
  };

in
{
  # Fully evaluated before printing, so an error (bad source, ...) leaves
  # stdout empty instead of a half-written JSON document.
  result = builtins.deepSeq result result;

  drvs = map (x: x.drv) foundList;

  # Where a moving git ref points now: the registry caches images under this commit.
  pin = if source.type == "git" then gitTree.rev else null;
}
