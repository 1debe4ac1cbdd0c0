//! The risk assessment against a table of commands, hostile spellings included.

use pipeguard_safety::{assess, assess_script, risk_name};
use pipeguard_taxonomy::Risk;

use Risk::{High, Low, Medium, Refused};

/// (shell script, expected level)
const SCRIPTS: &[(&str, Risk)] = &[
    // Low: the everyday heals.
    ("apt-get install -y nginx", Low),
    ("sudo apt-get update", Low),
    (
        "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends curl",
        Low,
    ),
    ("dnf -y install httpd", Low),
    ("yum makecache", Low),
    ("apk add --no-cache openssl", Low),
    ("zypper --non-interactive install nginx", Low),
    ("systemctl start nginx", Low),
    ("sudo systemctl restart postgresql.service", Low),
    ("service demo start", Low),
    ("rc-service nginx start", Low),
    ("mkdir -p /srv/app/releases", Low),
    ("touch /var/www/app/.keep", Low),
    ("apt-get clean", Low),
    ("dnf clean all", Low),
    ("journalctl --vacuum-size=200M", Low),
    (
        "python3 -m pip install --no-index --find-links /srv/wheels requests",
        Low,
    ),
    ("ls -la /etc && df -h", Low),
    ("echo hello | grep h", Low),
    ("timeout 30 nice -n 10 systemctl status sshd", Low),
    ("git status", Low),
    ("cat /etc/os-release | head -n 3", Low),
    // Medium: files and permissions of what the playbook manages, processes.
    ("chmod 0755 /srv/app/bin/deploy.sh", Medium),
    ("chown www-data:www-data /srv/app/uploads", Medium),
    ("rm -f /srv/app/run/deploy.lock", Medium),
    ("rm -rf /tmp/build-cache", Medium),
    ("rm -rf /var/cache/apt/archives/partial", Medium),
    (
        "sed -i 's/workers 4/workers 8/' /etc/nginx/nginx.conf",
        Medium,
    ),
    ("echo 'max_connections=200' >> /srv/app/app.conf", Medium),
    ("kill 4242", Medium),
    ("systemctl stop nginx", Medium),
    ("cp app.conf /srv/app/app.conf", Medium),
    ("./deploy.sh --fast", Medium),
    // High: system paths, users, firewall, kernel, disks, code computed at run time.
    ("useradd -m deploy", High),
    ("passwd -d root", High),
    ("iptables -F", High),
    ("ufw disable", High),
    ("modprobe -r nvme", High),
    ("sysctl -w vm.overcommit_memory=1", High),
    ("mount /dev/sdb1 /mnt", High),
    ("fdisk /dev/sda", High),
    ("apt-get remove -y openssh-server", High),
    ("chmod 4755 /srv/app/bin/helper", High),
    ("echo 'nameserver 1.1.1.1' > /etc/resolv.conf", High),
    ("cp evil.so /usr/lib/libc.so.6", High),
    ("rm -rf /etc/nginx", High),
    ("python3 -c 'import os; print(os.getcwd())'", High),
    ("$CMD --force", High),
    ("echo hello | base64 | sh", High),
    ("systemctl mask sshd", High),
    ("sudo -i", High),
    ("rm -rf \"$BUILD_DIR\"", High),
    // Refused: destructive, whatever the spelling.
    ("rm -rf /", Refused),
    ("rm -rf --no-preserve-root /", Refused),
    ("rm -rf /*", Refused),
    ("rm -fr /etc", Refused),
    ("rm -r -f /usr", Refused),
    ("rm --recursive --force /var", Refused),
    ("rm -rf ~", Refused),
    ("rm -rf $HOME", Refused),
    ("rm -rf /home/alice", Refused),
    ("/bin/rm -rf /", Refused),
    ("/usr/bin/../bin/rm -rf //", Refused),
    ("\\rm -rf /", Refused),
    ("r''m -rf /", Refused),
    ("\"rm\" -rf /", Refused),
    ("'r'\"m\" -rf /bin/..", Refused),
    ("$'\\x72\\x6d' -rf /", Refused),
    ("$'\\162\\155' -rf /", Refused),
    ("a=r; b=m; $a$b -rf /", Refused),
    ("X=/; rm -rf $X", Refused),
    ("$(echo rm) -rf /", Refused),
    ("`printf rm` -rf /", Refused),
    ("rm -rf \"$STEAMROOT/\"*", Refused),
    ("c='rm -rf /'; $c", Refused),
    ("rm${IFS}-rf${IFS}/", Refused),
    ("{rm,-rf,/}", Refused),
    ("rm -rf /{etc,usr}", Refused),
    ("rm -rf -- /", Refused),
    ("sudo rm -rf /", Refused),
    (
        "sudo -u root -- env LANG=C nice -n 5 timeout 10 rm -rf /",
        Refused,
    ),
    ("env -S 'rm -rf /'", Refused),
    ("sh -c 'rm -rf /'", Refused),
    ("bash -c \"sh -c 'rm -rf /'\"", Refused),
    ("bash -lc 'cd /tmp && rm -rf /*'", Refused),
    ("echo ok; rm -rf /", Refused),
    ("true && rm -rf /", Refused),
    ("false || rm -rf /", Refused),
    ("echo $(rm -rf /)", Refused),
    ("eval 'rm -rf /'", Refused),
    ("echo / | xargs rm -rf", Refused),
    ("find / -delete", Refused),
    ("find /tmp -delete", Refused),
    (
        "find /tmp -xdev -mindepth 1 -type f -atime +7 -delete",
        Medium,
    ),
    ("find / -mindepth 1 -delete", Refused),
    ("find / -exec rm {} \\;", Refused),
    ("busybox rm -rf /", Refused),
    ("mkfs.ext4 /dev/sda1", Refused),
    ("mkfs -t xfs /dev/nvme0n1", Refused),
    ("/sbin/mkswap /dev/sdb", Refused),
    ("wipefs -a /dev/sda", Refused),
    ("dd if=/dev/zero of=/dev/sda bs=1M", Refused),
    ("dd if=/dev/urandom of=/dev/nvme0n1", Refused),
    ("cat /dev/zero > /dev/sda", Refused),
    ("echo x | tee /dev/sdb", Refused),
    ("shred -n 3 /dev/sda", Refused),
    ("chmod -R 777 /", Refused),
    ("chmod -R 000 /etc", Refused),
    ("chmod --recursive a+rwx /", Refused),
    ("chown -R nobody:nogroup /", Refused),
    ("chown -R 1000 /usr", Refused),
    ("shutdown -h now", Refused),
    ("reboot", Refused),
    ("/sbin/halt", Refused),
    ("poweroff -f", Refused),
    ("init 0", Refused),
    ("telinit 6", Refused),
    ("systemctl reboot", Refused),
    ("systemctl isolate rescue.target", Refused),
    ("echo b > /proc/sysrq-trigger", Refused),
    ("kill -9 -1", Refused),
    ("kill -KILL 1", Refused),
    (":(){ :|:& };:", Refused),
    ("bomb() { bomb | bomb & }; bomb", Refused),
    ("perl -e 'fork while fork'", Refused),
    ("python3 -c 'import os\nwhile True: os.fork()'", Refused),
    ("curl -fsSL https://example.com/install.sh | sh", Refused),
    ("curl -s https://example.com/x | sudo bash", Refused),
    ("wget -O- https://example.com/x | bash", Refused),
    (
        "wget -qO - https://example.com/x | sudo -E bash -s -- --yes",
        Refused,
    ),
    ("curl https://example.com/x | python3 -", Refused),
    ("bash <(curl -s https://example.com/x)", Refused),
    (
        "sh -c \"$(curl -fsSL https://example.com/install.sh)\"",
        Refused,
    ),
    ("eval \"$(wget -qO- https://example.com/x)\"", Refused),
    ("source <(curl -s https://example.com/env)", Refused),
    (
        "curl -o /tmp/i.sh https://example.com/i.sh && sh /tmp/i.sh",
        Refused,
    ),
    ("echo cm0gLXJmIC8= | base64 -d | sh", Refused),
    ("echo cm0gLXJmIC8= | base64 --decode | bash", Refused),
    ("base64 -d <<< cm0gLXJmIC8= | sh", Refused),
    ("echo 'rm -rf /' | sh", Refused),
    ("printf 'rm -rf /' | bash", Refused),
    ("echo '/ fr- mr' | rev | sh", Refused),
    ("bash <<EOF\nrm -rf /\nEOF", Refused),
    ("echo x > /etc/passwd", Refused),
    (": > /etc/shadow", Refused),
    ("truncate -s 0 /etc/passwd", Refused),
    ("cp /dev/null /etc/passwd", Refused),
    ("ln -sf /dev/null /etc/passwd", Refused),
    ("mv /etc /tmp/etc", Refused),
    ("mv ~ /dev/null", Refused),
    ("rm /etc/passwd", Refused),
    ("rsync -a --delete /tmp/empty/ /", Refused),
    ("echo 'unterminated", Refused),
];

#[test]
fn table_of_scripts() {
    let mut wrong = vec![];
    for (script, want) in SCRIPTS {
        let got = assess_script(script);
        if got.level != *want {
            wrong.push(format!(
                "{script:?}: want {}, got {} ({})",
                risk_name(*want),
                risk_name(got.level),
                got.reason
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

fn argv(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn argv_form_is_assessed_without_a_shell() {
    assert_eq!(assess(&argv(&["rm", "-rf", "/"])).level, Refused);
    assert_eq!(
        assess(&argv(&["/bin/rm", "-r", "-f", "/usr/"])).level,
        Refused
    );
    assert_eq!(
        assess(&argv(&["sh", "-c", "echo ok; reboot"])).level,
        Refused
    );
    assert_eq!(assess(&argv(&["mkdir", "-p", "/tmp/x"])).level, Low);
    // Exec'd directly, `;` is an argument to echo, not a separator.
    assert_eq!(assess(&argv(&["echo", "a;reboot"])).level, Low);
    // One argument with shell syntax is how scripts reach `sh -c`: read it as one.
    assert_eq!(assess(&argv(&["curl x | sh"])).level, Refused);
    assert_eq!(assess(&argv(&[])).level, Refused);
}

#[test]
fn reasons_name_the_problem() {
    let a = assess_script("echo cm0gLXJmIC8= | base64 -d | sh");
    assert!(a.reason.contains("recursively deletes /"), "{}", a.reason);
    let a = assess_script(":(){ :|:& };:");
    assert!(a.reason.contains("fork bomb"), "{}", a.reason);
    let a = assess_script("rm -rf \"$DIR/\"*");
    assert!(
        a.reason.contains("when the variable is empty"),
        "{}",
        a.reason
    );
    assert!(a.findings.iter().all(|f| !f.command.contains('\u{1}')));
}
