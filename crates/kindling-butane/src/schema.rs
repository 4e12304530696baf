//! The Butane `fcos` schema, versions 1.0.0 to 1.6.0, as data.
//!
//! Every object lists its fields in the order Ignition's Go structs declare them, which is the
//! order Butane's JSON output uses. `min`/`max` are fcos minor versions (1.`min`.0 to
//! 1.`max`.0). A field with an empty `json` name is Butane sugar handled by the translator.

/// How a field is emitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Emit {
    /// Go pointer with `omitempty`: emitted whenever set, even to a zero value.
    Ptr,
    /// Go value with `omitempty`: omitted when zero (`""`, `0`, `false`).
    Val,
    /// Go value without `omitempty`: always emitted (zero value when unset).
    Always,
}

/// A field type.
#[derive(Debug)]
pub enum Ty {
    /// String.
    Str,
    /// Integer.
    Int,
    /// Boolean.
    Bool,
    /// List of strings.
    StrList,
    /// Object.
    Obj(&'static Obj),
    /// List of objects.
    List(&'static Obj),
}

/// A field of an object.
#[derive(Debug)]
pub struct Field {
    /// YAML key.
    pub yaml: &'static str,
    /// JSON key, empty for sugar.
    pub json: &'static str,
    /// Type.
    pub ty: Ty,
    /// First fcos minor version with this field.
    pub min: u8,
    /// Last fcos minor version with this field.
    pub max: u8,
    /// Emission rule.
    pub emit: Emit,
}

/// An object type.
#[derive(Debug)]
pub struct Obj {
    /// Name (used by the translator's hooks).
    pub name: &'static str,
    /// Fields in output order.
    pub fields: &'static [Field],
}

const LAST: u8 = 6;

const fn f(yaml: &'static str, json: &'static str, ty: Ty) -> Field {
    Field {
        yaml,
        json,
        ty,
        min: 0,
        max: LAST,
        emit: Emit::Ptr,
    }
}
const fn fv(yaml: &'static str, json: &'static str, ty: Ty, min: u8, max: u8, emit: Emit) -> Field {
    Field {
        yaml,
        json,
        ty,
        min,
        max,
        emit,
    }
}
const fn since(yaml: &'static str, json: &'static str, ty: Ty, min: u8) -> Field {
    fv(yaml, json, ty, min, LAST, Emit::Ptr)
}
const fn always(yaml: &'static str, json: &'static str, ty: Ty) -> Field {
    fv(yaml, json, ty, 0, LAST, Emit::Always)
}

use Ty::*;

/// Top level.
pub static CONFIG: Obj = Obj {
    name: "Config",
    fields: &[
        f("ignition", "ignition", Obj(&IGNITION)),
        since("kernel_arguments", "kernelArguments", Obj(&KERNEL_ARGS), 4),
        f("passwd", "passwd", Obj(&PASSWD)),
        f("storage", "storage", Obj(&STORAGE)),
        f("systemd", "systemd", Obj(&SYSTEMD)),
        f("variant", "", Str),
        f("version", "", Str),
        since("boot_device", "", Obj(&BOOT_DEVICE), 3),
        since("grub", "", Obj(&GRUB), 5),
    ],
};

static IGNITION: Obj = Obj {
    name: "Ignition",
    fields: &[
        f("config", "config", Obj(&IGN_CONFIG)),
        since("proxy", "proxy", Obj(&PROXY), 1),
        f("security", "security", Obj(&SECURITY)),
        f("timeouts", "timeouts", Obj(&TIMEOUTS)),
    ],
};

static IGN_CONFIG: Obj = Obj {
    name: "IgnitionConfig",
    fields: &[
        fv("merge", "merge", List(&CONFIG_REF_V1), 0, 0, Emit::Ptr),
        since("merge", "merge", List(&RESOURCE), 1),
        fv("replace", "replace", Obj(&CONFIG_REF_V1), 0, 0, Emit::Ptr),
        since("replace", "replace", Obj(&RESOURCE), 1),
    ],
};

static CONFIG_REF_V1: Obj = Obj {
    name: "ConfigReference",
    fields: &[
        f("source", "source", Str),
        f("verification", "verification", Obj(&VERIFICATION)),
    ],
};

static CA_REF_V1: Obj = Obj {
    name: "CaReference",
    fields: &[
        always("source", "source", Str),
        f("verification", "verification", Obj(&VERIFICATION)),
    ],
};

/// `Resource` (fcos >= 1.1.0): file contents, appends, configs, CAs, LUKS key files.
pub static RESOURCE: Obj = Obj {
    name: "Resource",
    fields: &[
        f("compression", "compression", Str),
        f("http_headers", "httpHeaders", List(&HTTP_HEADER)),
        f("source", "source", Str),
        f("verification", "verification", Obj(&VERIFICATION)),
        f("inline", "", Str),
        f("local", "", Str),
    ],
};

static FILE_CONTENTS_V1: Obj = Obj {
    name: "FileContents",
    fields: &[
        f("compression", "compression", Str),
        f("source", "source", Str),
        f("verification", "verification", Obj(&VERIFICATION)),
        f("inline", "", Str),
    ],
};

static HTTP_HEADER: Obj = Obj {
    name: "HTTPHeader",
    fields: &[always("name", "name", Str), f("value", "value", Str)],
};

static VERIFICATION: Obj = Obj {
    name: "Verification",
    fields: &[f("hash", "hash", Str)],
};

static PROXY: Obj = Obj {
    name: "Proxy",
    fields: &[
        f("http_proxy", "httpProxy", Str),
        f("https_proxy", "httpsProxy", Str),
        f("no_proxy", "noProxy", StrList),
    ],
};

static SECURITY: Obj = Obj {
    name: "Security",
    fields: &[f("tls", "tls", Obj(&TLS))],
};

static TLS: Obj = Obj {
    name: "TLS",
    fields: &[
        fv(
            "certificate_authorities",
            "certificateAuthorities",
            List(&CA_REF_V1),
            0,
            0,
            Emit::Ptr,
        ),
        since(
            "certificate_authorities",
            "certificateAuthorities",
            List(&RESOURCE),
            1,
        ),
    ],
};

static TIMEOUTS: Obj = Obj {
    name: "Timeouts",
    fields: &[
        f("http_response_headers", "httpResponseHeaders", Int),
        f("http_total", "httpTotal", Int),
    ],
};

static KERNEL_ARGS: Obj = Obj {
    name: "KernelArguments",
    fields: &[
        f("should_exist", "shouldExist", StrList),
        f("should_not_exist", "shouldNotExist", StrList),
    ],
};

static PASSWD: Obj = Obj {
    name: "Passwd",
    fields: &[
        f("groups", "groups", List(&PASSWD_GROUP)),
        f("users", "users", List(&PASSWD_USER)),
    ],
};

static PASSWD_GROUP: Obj = Obj {
    name: "PasswdGroup",
    fields: &[
        f("gid", "gid", Int),
        always("name", "name", Str),
        f("password_hash", "passwordHash", Str),
        since("should_exist", "shouldExist", Bool, 2),
        f("system", "system", Bool),
    ],
};

/// `passwd.users[]`.
pub static PASSWD_USER: Obj = Obj {
    name: "PasswdUser",
    fields: &[
        f("gecos", "gecos", Str),
        f("groups", "groups", StrList),
        f("home_dir", "homeDir", Str),
        always("name", "name", Str),
        f("no_create_home", "noCreateHome", Bool),
        f("no_log_init", "noLogInit", Bool),
        f("no_user_group", "noUserGroup", Bool),
        f("password_hash", "passwordHash", Str),
        f("primary_group", "primaryGroup", Str),
        f("ssh_authorized_keys", "sshAuthorizedKeys", StrList),
        f("shell", "shell", Str),
        since("should_exist", "shouldExist", Bool, 2),
        f("system", "system", Bool),
        f("uid", "uid", Int),
        since("ssh_authorized_keys_local", "", StrList, 5),
    ],
};

static STORAGE: Obj = Obj {
    name: "Storage",
    fields: &[
        f("directories", "directories", List(&DIRECTORY)),
        f("disks", "disks", List(&DISK)),
        f("files", "files", List(&FILE)),
        f("filesystems", "filesystems", List(&FILESYSTEM)),
        f("links", "links", List(&LINK)),
        since("luks", "luks", List(&LUKS), 2),
        f("raid", "raid", List(&RAID)),
        since("trees", "", List(&TREE), 1),
    ],
};

static NODE_GROUP: Obj = Obj {
    name: "NodeGroup",
    fields: &[f("id", "id", Int), f("name", "name", Str)],
};
static NODE_USER: Obj = Obj {
    name: "NodeUser",
    fields: &[f("id", "id", Int), f("name", "name", Str)],
};

static DIRECTORY: Obj = Obj {
    name: "Directory",
    fields: &[
        f("group", "group", Obj(&NODE_GROUP)),
        f("overwrite", "overwrite", Bool),
        always("path", "path", Str),
        f("user", "user", Obj(&NODE_USER)),
        f("mode", "mode", Int),
    ],
};

/// `storage.files[]`.
pub static FILE: Obj = Obj {
    name: "File",
    fields: &[
        f("group", "group", Obj(&NODE_GROUP)),
        f("overwrite", "overwrite", Bool),
        always("path", "path", Str),
        f("user", "user", Obj(&NODE_USER)),
        fv("append", "append", List(&FILE_CONTENTS_V1), 0, 0, Emit::Ptr),
        since("append", "append", List(&RESOURCE), 1),
        fv(
            "contents",
            "contents",
            Obj(&FILE_CONTENTS_V1),
            0,
            0,
            Emit::Ptr,
        ),
        since("contents", "contents", Obj(&RESOURCE), 1),
        f("mode", "mode", Int),
    ],
};

static LINK: Obj = Obj {
    name: "Link",
    fields: &[
        f("group", "group", Obj(&NODE_GROUP)),
        f("overwrite", "overwrite", Bool),
        always("path", "path", Str),
        f("user", "user", Obj(&NODE_USER)),
        f("hard", "hard", Bool),
        fv("target", "target", Str, 0, 3, Emit::Always),
        since("target", "target", Str, 4),
    ],
};

static DISK: Obj = Obj {
    name: "Disk",
    fields: &[
        always("device", "device", Str),
        f("partitions", "partitions", List(&PARTITION)),
        f("wipe_table", "wipeTable", Bool),
    ],
};

static PARTITION: Obj = Obj {
    name: "Partition",
    fields: &[
        f("guid", "guid", Str),
        f("label", "label", Str),
        fv("number", "number", Int, 0, LAST, Emit::Val),
        since("resize", "resize", Bool, 2),
        f("should_exist", "shouldExist", Bool),
        f("size_mib", "sizeMiB", Int),
        f("start_mib", "startMiB", Int),
        f("type_guid", "typeGuid", Str),
        f("wipe_partition_entry", "wipePartitionEntry", Bool),
    ],
};

static FILESYSTEM: Obj = Obj {
    name: "Filesystem",
    fields: &[
        always("device", "device", Str),
        f("format", "format", Str),
        f("label", "label", Str),
        since("mount_options", "mountOptions", StrList, 1),
        f("options", "options", StrList),
        f("path", "path", Str),
        f("uuid", "uuid", Str),
        f("wipe_filesystem", "wipeFilesystem", Bool),
        since("with_mount_unit", "", Bool, 1),
    ],
};

static LUKS: Obj = Obj {
    name: "Luks",
    fields: &[
        since("cex", "cex", Obj(&CEX), 6),
        f("clevis", "clevis", Obj(&CLEVIS)),
        f("device", "device", Str),
        since("discard", "discard", Bool, 5),
        f("key_file", "keyFile", Obj(&RESOURCE)),
        f("label", "label", Str),
        always("name", "name", Str),
        since("open_options", "openOptions", StrList, 5),
        f("options", "options", StrList),
        f("uuid", "uuid", Str),
        f("wipe_volume", "wipeVolume", Bool),
    ],
};

static CEX: Obj = Obj {
    name: "Cex",
    fields: &[f("enabled", "enabled", Bool)],
};

static CLEVIS: Obj = Obj {
    name: "Clevis",
    fields: &[
        f("custom", "custom", Obj(&CLEVIS_CUSTOM)),
        f("tang", "tang", List(&TANG)),
        f("threshold", "threshold", Int),
        f("tpm2", "tpm2", Bool),
    ],
};

static CLEVIS_CUSTOM: Obj = Obj {
    name: "ClevisCustom",
    fields: &[
        fv("config", "config", Str, 0, 3, Emit::Always),
        since("config", "config", Str, 4),
        f("needs_network", "needsNetwork", Bool),
        fv("pin", "pin", Str, 0, 3, Emit::Always),
        since("pin", "pin", Str, 4),
    ],
};

static TANG: Obj = Obj {
    name: "Tang",
    fields: &[
        since("advertisement", "advertisement", Str, 5),
        f("thumbprint", "thumbprint", Str),
        fv("url", "url", Str, 0, LAST, Emit::Val),
    ],
};

static RAID: Obj = Obj {
    name: "Raid",
    fields: &[
        f("devices", "devices", StrList),
        fv("level", "level", Str, 0, 3, Emit::Always),
        since("level", "level", Str, 4),
        always("name", "name", Str),
        f("options", "options", StrList),
        f("spares", "spares", Int),
    ],
};

static SYSTEMD: Obj = Obj {
    name: "Systemd",
    fields: &[f("units", "units", List(&UNIT))],
};

static UNIT: Obj = Obj {
    name: "Unit",
    fields: &[
        f("contents", "contents", Str),
        f("dropins", "dropins", List(&DROPIN)),
        f("enabled", "enabled", Bool),
        f("mask", "mask", Bool),
        always("name", "name", Str),
        since("contents_local", "", Str, 5),
    ],
};

static DROPIN: Obj = Obj {
    name: "Dropin",
    fields: &[
        f("contents", "contents", Str),
        always("name", "name", Str),
        since("contents_local", "", Str, 5),
    ],
};

static TREE: Obj = Obj {
    name: "Tree",
    fields: &[f("local", "", Str), f("path", "", Str)],
};

static BOOT_DEVICE: Obj = Obj {
    name: "BootDevice",
    fields: &[
        f("layout", "", Str),
        f("luks", "", Obj(&BOOT_DEVICE_LUKS)),
        f("mirror", "", Obj(&BOOT_DEVICE_MIRROR)),
    ],
};

static BOOT_DEVICE_LUKS: Obj = Obj {
    name: "BootDeviceLuks",
    fields: &[
        since("cex", "cex", Obj(&CEX), 6),
        since("discard", "discard", Bool, 5),
        since("device", "device", Str, 6),
        f("tang", "tang", List(&TANG)),
        f("threshold", "threshold", Int),
        f("tpm2", "tpm2", Bool),
    ],
};

static BOOT_DEVICE_MIRROR: Obj = Obj {
    name: "BootDeviceMirror",
    fields: &[f("devices", "devices", StrList)],
};

static GRUB: Obj = Obj {
    name: "Grub",
    fields: &[f("users", "users", List(&GRUB_USER))],
};

static GRUB_USER: Obj = Obj {
    name: "GrubUser",
    fields: &[
        f("name", "name", Str),
        f("password_hash", "password_hash", Str),
    ],
};

/// Field `yaml` of `obj` as it exists in fcos 1.`minor`.0.
pub fn field(obj: &'static Obj, yaml: &str, minor: u8) -> Option<&'static Field> {
    obj.fields
        .iter()
        .find(|f| f.yaml == yaml && f.min <= minor && minor <= f.max)
}

/// Field with JSON key `json` of `obj` (any version).
pub fn field_by_json(obj: &'static Obj, json: &str) -> Option<&'static Field> {
    obj.fields
        .iter()
        .find(|f| f.json == json && !f.json.is_empty())
}
