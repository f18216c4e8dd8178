//! Generates the FreeRADIUS bindings (feature `freeradius` only).
//!
//! The core of the crate needs nothing from here; without the feature this
//! script does nothing, so `cargo test` works on a machine without FreeRADIUS.
//!
//! Inputs (all documented in README.md):
//! - `FREERADIUS_INCLUDE_DIR`: the installed headers, default `/usr/include/freeradius`
//!   (Debian's libfreeradius-dev). Their `autoconf.h` and `features.h` describe how the
//!   server was really built, so they decide `NDEBUG` and the struct layouts.
//! - `FREERADIUS_SOURCE_DIR`: a FreeRADIUS source tree of the same version, for the
//!   headers Debian's package leaves out; default `.deps/freeradius-src`, which
//!   `scripts/setup.sh` fills from Debian's source package.
//! - `LIBCLANG_PATH`: where bindgen finds libclang, if not in a standard place.
//!
//! Which headers of other packages the FreeRADIUS headers need follows their
//! `autoconf.h` (include/header-packages, shared with `scripts/setup.sh`): FreeRADIUS
//! 3.2.1 (Debian 12) includes pcre.h, 3.2.7 (Debian 13) does not.

#[cfg(feature = "freeradius")]
use std::env;
#[cfg(feature = "freeradius")]
use std::fs;
#[cfg(feature = "freeradius")]
use std::path::{Path, PathBuf};

#[cfg(feature = "freeradius")]
/// Headers that radiusd.h includes but Debian's libfreeradius-dev does not ship.
const MISSING_FROM_DEBIAN: [&str; 8] =
    ["automask.h", "clients.h", "connection.h", "listen.h", "log.h", "process.h", "tmpl.h", "xlat.h"];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=include/wrapper.h");
    for var in ["FREERADIUS_INCLUDE_DIR", "FREERADIUS_SOURCE_DIR", "LIBCLANG_PATH"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    #[cfg(feature = "freeradius")]
    if let Err(message) = generate_bindings() {
        eprintln!("\nerror: cannot build the FreeRADIUS module: {message}\n");
        std::process::exit(1);
    }
}

#[cfg(feature = "freeradius")]
fn generate_bindings() -> Result<(), String> {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
    let out = PathBuf::from(env::var("OUT_DIR").map_err(|e| e.to_string())?);

    let installed = env::var_os("FREERADIUS_INCLUDE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/include/freeradius"));
    if !installed.join("radiusd.h").is_file() {
        return Err(format!(
            "{} has no radiusd.h: install the headers of the FreeRADIUS you will load the module \
             into (Debian: run scripts/setup.sh, or apt-get install libfreeradius-dev and the \
             packages include/header-packages names), or set FREERADIUS_INCLUDE_DIR to their directory",
            installed.display()
        ));
    }
    let system_include = installed.parent().ok_or("FREERADIUS_INCLUDE_DIR has no parent directory")?.to_path_buf();

    // Headers the package lacks go into an overlay searched first, with the
    // source tree's <freeradius-devel/...> spelled as the installed <freeradius/...>.
    let overlay = out.join("include");
    let overlay_fr = overlay.join("freeradius");
    fs::create_dir_all(&overlay_fr).map_err(|e| format!("{}: {e}", overlay_fr.display()))?;
    let missing: Vec<&str> = MISSING_FROM_DEBIAN.iter().copied().filter(|h| !installed.join(h).is_file()).collect();
    if !missing.is_empty() {
        let source = env::var_os("FREERADIUS_SOURCE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| manifest.join(".deps/freeradius-src"));
        let source_include = source.join("src/include");
        for header in &missing {
            let from = source_include.join(header);
            let text = fs::read_to_string(&from).map_err(|_| {
                format!(
                    "{} lacks {} (and {} more headers radiusd.h needs: {}); run scripts/setup.sh, \
                     which fetches them from Debian's source package of the installed version, or set \
                     FREERADIUS_SOURCE_DIR to a FreeRADIUS source tree of the same version",
                    installed.display(),
                    header,
                    missing.len() - 1,
                    missing.join(" ")
                )
            })?;
            println!("cargo:rerun-if-changed={}", from.display());
            fs::write(overlay_fr.join(header), text.replace("<freeradius-devel/", "<freeradius/"))
                .map_err(|e| format!("{}: {e}", overlay_fr.display()))?;
        }
    }

    // The server was built with -DNDEBUG (autoconf.h says WITH_NDEBUG) but nothing defines
    // NDEBUG for a module: without it `struct rad_request` gains a `magic` field and every
    // offset after it is wrong.
    let autoconf = installed.join("autoconf.h");
    let autoconf_text = fs::read_to_string(&autoconf).map_err(|e| format!("{}: {e}", autoconf.display()))?;
    let with_ndebug =
        autoconf_text.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["#define", "WITH_NDEBUG", "1"]);
    println!("cargo:rerun-if-changed={}", autoconf.display());

    // Headers of other packages that the FreeRADIUS headers include, as their autoconf.h
    // says (include/header-packages): say which package is missing rather than leave it
    // to a clang error.
    let table_path = manifest.join("include/header-packages");
    println!("cargo:rerun-if-changed={}", table_path.display());
    let table = fs::read_to_string(&table_path).map_err(|e| format!("{}: {e}", table_path.display()))?;
    for (header, package) in headers_needed(&table, &autoconf_text) {
        let found = [system_include.as_path(), Path::new("/usr/include"), Path::new("/usr/local/include")]
            .iter()
            .any(|dir| dir.join(header).is_file());
        if !found {
            return Err(format!(
                "{header} was not found; the FreeRADIUS headers in {} include it: install {package} \
                 (or run scripts/setup.sh)",
                installed.display()
            ));
        }
    }

    check_libclang()?;

    let mut builder = bindgen::Builder::default()
        .header(manifest.join("include/wrapper.h").to_string_lossy())
        .clang_arg(format!("-I{}", overlay.display()))
        .clang_arg(format!("-I{}", system_include.display()))
        .allowlist_type("module_t|CONF_PARSER|REQUEST|rad_request|RADIUS_PACKET|VALUE_PAIR|rlm_rcode_t|rlm_rcodes")
        .allowlist_type("log_type_t|log_lvl_t|FR_TOKEN|PW_TYPE|PW_CODE|rlm_mfa_abi|rlm_components|RADCLIENT|radclient|main_config_t")
        .allowlist_function("fr_pair_(find_by_num|afrom_num|add|replace|make|value_bstrncpy|value_memcpy|delete_by_num)")
        .allowlist_function("radlog_request|radlog|cf_log_err_cs|cf_section_name[12]|cf_section_sub_find|cf_section_parse|cf_subsection_find_next|cf_pair_find_next|cf_pair_attr|cf_pair_value|dict_attrbyname")
        .allowlist_function("request_data_(add|get|reference)|talloc_strndup|_talloc_free|dict_valbyattr|dict_valbyname|dict_addattr")
        .allowlist_function("cf_top_section|cf_item_find_next|cf_item_is_section|cf_item_is_pair|cf_item_to_section|cf_item_to_pair")
        .allowlist_var("rad_debug_lvl|main_config|PW_.*|RLM_TYPE_.*|TAG_ANY|VENDORPEC_MICROSOFT")
        .derive_default(true)
        .layout_tests(true)
        .generate_comments(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    if with_ndebug {
        builder = builder.clang_arg("-DNDEBUG");
    }
    let bindings = builder
        .generate()
        .map_err(|e| format!("bindgen could not read the FreeRADIUS headers ({e}); see the clang errors above"))?;
    bindings.write_to_file(out.join("freeradius_bindings.rs")).map_err(|e| format!("writing the bindings: {e}"))?;
    Ok(())
}

#[cfg(feature = "freeradius")]
/// bindgen loads libclang at run time and panics without it; say what to install instead.
fn check_libclang() -> Result<(), String> {
    if let Some(dir) = env::var_os("LIBCLANG_PATH") {
        return if has_libclang(Path::new(&dir)) {
            Ok(())
        } else {
            Err(format!("LIBCLANG_PATH={} holds no libclang.so", Path::new(&dir).display()))
        };
    }
    let mut candidates = vec![
        PathBuf::from("/usr/lib/x86_64-linux-gnu"),
        PathBuf::from("/usr/lib/aarch64-linux-gnu"),
        PathBuf::from("/usr/lib"),
        PathBuf::from("/usr/local/lib"),
    ];
    if let Ok(entries) = fs::read_dir("/usr/lib") {
        candidates.extend(
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("llvm-"))
                .map(|e| e.path().join("lib")),
        );
    }
    if candidates.iter().any(|d| has_libclang(d)) {
        Ok(())
    } else {
        Err("libclang was not found: install it (Debian: apt-get install libclang-dev) or set \
             LIBCLANG_PATH to the directory that holds libclang.so"
            .to_string())
    }
}

#[cfg(feature = "freeradius")]
fn has_libclang(dir: &Path) -> bool {
    fs::read_dir(dir)
        .map(|entries| {
            entries.flatten().any(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.starts_with("libclang") && name.contains(".so")
            })
        })
        .unwrap_or(false)
}

#[cfg(feature = "freeradius")]
/// Whether autoconf.h defines `name` (`#define NAME ...`; `/* #undef NAME */` does not).
fn defines(autoconf: &str, name: &str) -> bool {
    autoconf.lines().any(|l| {
        let mut words = l.split_whitespace();
        words.next() == Some("#define") && words.next() == Some(name)
    })
}

#[cfg(feature = "freeradius")]
/// The (header, package) rows of include/header-packages whose condition autoconf.h meets.
fn headers_needed<'a>(table: &'a str, autoconf: &str) -> Vec<(&'a str, &'a str)> {
    table
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| match l.split_whitespace().collect::<Vec<_>>()[..] {
            [condition, header, package] => Some((condition, header, package)),
            _ => None,
        })
        .filter(|(condition, _, _)| *condition == "always" || defines(autoconf, condition))
        .map(|(_, header, package)| (header, package))
        .collect()
}
