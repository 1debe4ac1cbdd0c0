//! A labelled corpus of destructive and everyday commands, by class, measured as a whole:
//! the share of destructive commands rated high or refused (caught) and the share of everyday
//! commands rated high or refused (false alarms). The targets are those set for the safety
//! assessment: at least 98 % caught, at most 2 % false alarms, on the corpus and in each class.
//! `cargo test -p pipeguard-safety --test safety_corpus -- --nocapture` prints the figures.

use pipeguard_safety::{assess_script, risk_name};
use pipeguard_taxonomy::Risk;

/// (class, script): each must be rated high or refused.
const DESTRUCTIVE: &[(&str, &str)] = &[
    // Deleting data directories: the data of services, mounts, backups, homes.
    ("data-dirs", "rm -rf /data"),
    ("data-dirs", "rm -rf /data/"),
    ("data-dirs", "rm -rf /srv/data"),
    ("data-dirs", "rm -rf /srv/minio"),
    ("data-dirs", "rm -rf /var/lib/grafana"),
    ("data-dirs", "rm -rf /var/lib/rabbitmq/mnesia"),
    ("data-dirs", "rm -rf /var/lib/influxdb/"),
    ("data-dirs", "rm -rf /var/lib/cassandra/data/keyspace1"),
    ("data-dirs", "rm -rf /var/lib/clickhouse/"),
    ("data-dirs", "rm -rf /var/lib/docker/volumes/app_db/_data"),
    ("data-dirs", "rm -rf /opt/gitlab/data"),
    ("data-dirs", "rm -rf /opt/sonarqube/data/es7"),
    ("data-dirs", "rm -rf /opt/nexus/sonatype-work"),
    ("data-dirs", "rm -rf /home/deploy/app/storage"),
    ("data-dirs", "rm -rf /home/git/repositories"),
    ("data-dirs", "rm -rf /mnt/backups"),
    ("data-dirs", "rm -rf /mnt/data/*"),
    ("data-dirs", "rm -r /media/usb-backup"),
    ("data-dirs", "rm -rf /var/opt/mssql/data"),
    ("data-dirs", "rm -rf /backup/*"),
    ("data-dirs", "rm -rf /var/backups"),
    ("data-dirs", "rm -rf /pgdata"),
    ("data-dirs", "sudo rm -rf /srv/www/uploads"),
    ("data-dirs", "rm -Rf --one-file-system /data/kafka-logs"),
    ("data-dirs", "rm -rf /export/home"),
    ("data-dirs", "cd /var/lib && rm -rf mysql-files prometheus"),
    ("data-dirs", "rm -f /srv/app/db.sqlite3"),
    ("data-dirs", "unlink /var/lib/mysql/ibdata1"),
    ("data-dirs", "mv /var/lib/mysql /tmp/mysql.bak"),
    ("data-dirs", "rm -rf /var/jenkins_home/jobs"),
    ("data-dirs", "rm -rf /data1"),
    ("data-dirs", "rm -rf /disk1/hdfs"),
    // Wrappers: the command they run is judged.
    ("wrappers", "env FOO=1 rm -rf /data"),
    ("wrappers", "env -i rm -rf /var/lib/mysql"),
    ("wrappers", "env -u HOME rm -rf /srv/data"),
    ("wrappers", "env -C /var/lib rm -rf mysql"),
    ("wrappers", "env --chdir=/srv rm -rf data"),
    ("wrappers", "nice -n 19 rm -rf /data"),
    ("wrappers", "nohup rm -rf /var/lib/elasticsearch &"),
    ("wrappers", "timeout 5 rm -rf /srv/data"),
    ("wrappers", "timeout -k 5 60 shred -u /dev/sda"),
    ("wrappers", "stdbuf -oL rm -rf /data"),
    (
        "wrappers",
        "sudo -u postgres rm -rf /var/lib/postgresql/16/main",
    ),
    ("wrappers", "sudo -E -H rm -rf /data"),
    ("wrappers", "echo /data | xargs rm -rf"),
    ("wrappers", "exec rm -rf /data"),
    ("wrappers", "command rm -rf /data"),
    ("wrappers", "command -p rm -rf /srv/data"),
    ("wrappers", "builtin exec rm -rf /data"),
    ("wrappers", "ionice -c3 nice rm -rf /var/lib/redis"),
    ("wrappers", "env FOO=1 BAR=2 sh -c 'rm -rf /data'"),
    (
        "wrappers",
        "sudo -u app env -i PATH=/bin timeout 5 nohup rm -rf /srv/data",
    ),
    ("wrappers", "doas -u root rm -rf /data"),
    ("wrappers", "setsid nohup rm -rf /mnt/backups"),
    // A command taken from a variable set earlier in the script.
    ("variables", "X=rm; $X -rf /data"),
    ("variables", "cmd=\"rm -rf\"; $cmd /data"),
    ("variables", "X=rm; ${X} -rf /srv/data"),
    ("variables", "D=/var/lib/mysql; rm -rf \"$D\""),
    ("variables", "export TARGET=/data; rm -rf \"$TARGET\""),
    ("variables", "declare -r R=rm; $R -rf /data"),
    ("variables", "CMD=${CMD:-rm}; $CMD -rf /data"),
    ("variables", "readonly K=killall; $K -9 postgres"),
    ("variables", "a=docker; b=volume; $a $b prune -f"),
    (
        "variables",
        "f=/var/lib/redis/dump.rdb; truncate -s0 \"$f\"",
    ),
    ("variables", "X=r; Y=m; $X$Y -rf /data"),
    ("variables", "read -r c <<< 'rm -rf'; $c /data"),
    ("variables", "$CLEANUP_CMD --all"),
    ("variables", "\"$TOOL\" -rf /data"),
    // Other ways to delete or overwrite.
    (
        "deleters",
        "tar --remove-files -czf /tmp/db.tgz /var/lib/mysql",
    ),
    ("deleters", "tar czf backup.tgz --remove-files /data"),
    (
        "deleters",
        "tar -cf - /srv/data --remove-files | gzip > /tmp/x.gz",
    ),
    (
        "deleters",
        "rsync -a --delete /tmp/empty/ /var/lib/postgresql/",
    ),
    ("deleters", "rsync -av --delete empty/ /data/"),
    ("deleters", "rsync -a --delete /tmp/empty/ /usr/"),
    (
        "deleters",
        "rsync -a --delete --force ./empty/ root@db:/var/lib/mysql/",
    ),
    ("deleters", "find / -delete"),
    ("deleters", "find /data -type f -delete"),
    ("deleters", "find /var/lib/mysql -name '*.ibd' -delete"),
    ("deleters", "find /srv -mindepth 1 -delete"),
    ("deleters", "shred -u /var/lib/mysql/ibdata1"),
    ("deleters", "shred -n 3 -z /dev/sdb"),
    ("deleters", "wipefs -a /dev/nvme0n1"),
    ("deleters", "dd if=/dev/zero of=/dev/sda bs=1M"),
    ("deleters", "dd if=/dev/urandom of=/dev/mapper/vg0-data"),
    (
        "deleters",
        "dd if=/dev/zero of=/var/lib/postgresql/16/main/base/16384/1259 bs=8k count=1",
    ),
    // Emptying a database file or a file of a data directory.
    ("truncation", "truncate -s0 /var/lib/mysql/ibdata1"),
    ("truncation", "truncate -s 0 /data/app.db"),
    ("truncation", "truncate --size=0 /srv/app/db.sqlite3"),
    ("truncation", ": > /var/lib/redis/dump.rdb"),
    ("truncation", "> /var/lib/postgresql/16/main/PG_VERSION"),
    ("truncation", "cp /dev/null /data/prod.sqlite"),
    ("truncation", "cat /dev/null > /opt/app/data/app.db"),
    ("truncation", "echo -n > /var/lib/mongodb/WiredTiger.wt"),
    ("truncation", "dd if=/dev/null of=/srv/db/main.db"),
    ("truncation", "truncate -s0 /home/app/instance/app.sqlite3"),
    ("truncation", ": > /var/lib/grafana/grafana.db"),
    ("truncation", "tee /var/lib/etcd/member/snap/db < /dev/null"),
    // Containers: volumes and every container at once.
    ("containers", "docker system prune -af --volumes"),
    ("containers", "docker system prune --all --force --volumes"),
    ("containers", "docker volume rm pgdata"),
    ("containers", "docker volume prune -af"),
    ("containers", "docker volume rm $(docker volume ls -q)"),
    ("containers", "docker rm -f $(docker ps -aq)"),
    ("containers", "docker ps -aq | xargs docker rm -f"),
    ("containers", "docker rm -vf $(docker ps -aq)"),
    (
        "containers",
        "docker container rm -f $(docker container ls -aq)",
    ),
    ("containers", "docker kill $(docker ps -q)"),
    ("containers", "podman system prune -af --volumes"),
    ("containers", "podman volume prune -f"),
    ("containers", "podman rm -af"),
    ("containers", "podman pod rm -af"),
    ("containers", "nerdctl system prune -af --volumes"),
    ("containers", "docker compose down -v"),
    // Killing databases and the host's daemons.
    ("kill", "killall -9 postgres"),
    ("kill", "pkill -9 mysqld"),
    ("kill", "kill -9 -1"),
    ("kill", "pkill -KILL -f mongod"),
    ("kill", "killall -s KILL dockerd"),
    ("kill", "kill -9 $(pgrep -x postgres)"),
    ("kill", "kill -9 $(pidof redis-server)"),
    ("kill", "pkill -9 -u postgres"),
    ("kill", "killall -9 etcd"),
    ("kill", "pkill containerd"),
    ("kill", "kill -9 $(cat /var/run/mysqld/mysqld.pid)"),
    ("kill", "pgrep -f elasticsearch | xargs kill -9"),
    ("kill", "killall -9 -r 'postgres.*'"),
    ("kill", "kill -9 $(lsof -t -i:5432)"),
    // Stopping, disabling or masking services the host depends on.
    ("services", "systemctl disable --now docker"),
    ("services", "systemctl stop docker"),
    ("services", "systemctl mask postgresql"),
    ("services", "systemctl stop postgresql@16-main"),
    ("services", "systemctl stop mysql mariadb"),
    ("services", "systemctl disable --now sshd"),
    ("services", "systemctl stop networking"),
    ("services", "service mongod stop"),
    ("services", "systemctl stop containerd.service"),
    ("services", "systemctl stop redis-server"),
    ("services", "systemctl kill -s KILL postgresql"),
    ("services", "systemctl disable --now kubelet"),
    ("services", "systemctl stop postgresql.service"),
    ("services", "service docker stop"),
    ("services", "systemctl stop postgresql-15"),
    // Cleaning or resetting a checkout outside the CI workspace.
    ("git", "git clean -fdx /"),
    ("git", "git -C / clean -fdx"),
    ("git", "cd / && git clean -ffdx"),
    ("git", "git -C /srv/app clean -fdx"),
    ("git", "cd /var/www/app && git reset --hard origin/main"),
    ("git", "git -C /opt/app reset --hard HEAD~5"),
    ("git", "cd /home/deploy/site && git clean -fdx"),
    ("git", "git --work-tree=/etc clean -fdx"),
    ("git", "git clean -fdx /etc"),
    ("git", "cd /etc && git reset --hard"),
    // Commands run on another host or in a container, judged as there.
    ("remote", "kubectl exec db-0 -- rm -rf /var/lib/data"),
    ("remote", "kubectl exec -n prod deploy/api -- rm -rf /data"),
    (
        "remote",
        "kubectl exec -it mysql-0 -c mysql -- sh -c 'rm -rf /var/lib/mysql/*'",
    ),
    ("remote", "docker exec pg rm -rf /var/lib/postgresql/data"),
    ("remote", "docker exec -u root app sh -c 'rm -rf /srv/data'"),
    ("remote", "ssh db1 'rm -rf /var/lib/mongodb'"),
    ("remote", "ssh -t root@host \"sudo rm -rf /data/*\""),
    ("remote", "ansible db -a 'rm -rf /var/lib/data'"),
    (
        "remote",
        "ansible all -m shell -a 'truncate -s0 /var/lib/redis/dump.rdb'",
    ),
    ("remote", "docker compose exec db rm -rf /var/lib/data"),
    ("remote", "podman exec db rm -rf /var/lib/data"),
    ("remote", "ssh host killall -9 postgres"),
    ("remote", "kubectl exec redis-0 -- redis-cli FLUSHALL"),
];

/// (class, script): each must be rated low or medium.
const EVERYDAY: &[(&str, &str)] = &[
    // Builds and tests.
    ("ci", "npm ci"),
    ("ci", "npm run build"),
    ("ci", "npm test -- --ci"),
    ("ci", "yarn install --frozen-lockfile"),
    ("ci", "pnpm install --frozen-lockfile"),
    ("ci", "pnpm run lint"),
    ("ci", "npx prettier --check ."),
    ("ci", "cargo build --release"),
    ("ci", "cargo test --workspace"),
    ("ci", "cargo clippy --all-targets -- -D warnings"),
    ("ci", "pytest -q"),
    ("ci", "python -m pytest tests/ -x"),
    ("ci", "pip install -r requirements.txt"),
    ("ci", "make -j4 test"),
    ("ci", "make clean"),
    ("ci", "go test ./..."),
    // Containers.
    ("ci", "docker build -t app:ci ."),
    ("ci", "docker build --no-cache -f Dockerfile.ci -t app ."),
    ("ci", "docker run --rm app:ci npm test"),
    ("ci", "docker push registry.example.com/app:1.2.3"),
    ("ci", "docker tag app:ci app:latest"),
    ("ci", "docker compose up -d --build"),
    ("ci", "docker compose down"),
    ("ci", "docker system df"),
    ("ci", "docker image prune -f"),
    ("ci", "docker builder prune -af"),
    ("ci", "docker container prune -f"),
    ("ci", "docker rm -f build-$CI_JOB_ID"),
    // Kubernetes and Helm.
    ("ci", "kubectl get pods -n staging"),
    ("ci", "kubectl apply -f k8s/"),
    ("ci", "kubectl rollout status deploy/api -n staging"),
    ("ci", "kubectl rollout restart deploy/api -n staging"),
    ("ci", "kubectl rollout undo deploy/api"),
    ("ci", "kubectl logs job/migrate -n ci"),
    ("ci", "helm upgrade --install api ./chart -n staging --wait"),
    ("ci", "helm rollback api 3 -n staging"),
    ("ci", "helm repo update"),
    // Infrastructure as code.
    ("ci", "terraform init -input=false"),
    ("ci", "terraform plan -out=tfplan"),
    ("ci", "terraform fmt -check -recursive"),
    // Git.
    ("ci", "git fetch origin"),
    ("ci", "git checkout -b feature-x"),
    ("ci", "git push origin feature-x"),
    ("ci", "git push -u origin HEAD"),
    ("ci", "git pull --rebase"),
    ("ci", "git tag v1.2.3 && git push origin v1.2.3"),
    ("ci", "git submodule update --init --recursive"),
    ("ci", "git clean -fdx"),
    ("ci", "git reset --hard origin/main"),
    ("ci", "git -C /home/runner/work/app/app clean -ffdx"),
    ("ci", "cd /builds/group/app && git reset --hard HEAD"),
    // Build directories and caches.
    ("ci", "rm -rf build dist"),
    ("ci", "rm -rf node_modules/.cache"),
    ("ci", "rm -rf target/debug/incremental"),
    ("ci", "rm -rf ~/.cache/pip"),
    ("ci", "rm -rf ~/.npm/_cacache"),
    ("ci", "rm -rf ~/.gradle/caches/"),
    ("ci", "rm -rf /home/runner/work/app/app/coverage"),
    ("ci", "rm -rf \"dist/$APP_NAME\""),
    ("ci", "rm -rf /srv/app/releases/41"),
    ("ci", "rm -f /var/lib/postgresql/16/main/postmaster.pid"),
    (
        "ci",
        "apt-get update && apt-get install -y jq && rm -rf /var/lib/apt/lists/*",
    ),
    // Services and the host.
    ("ci", "systemctl restart nginx"),
    ("ci", "systemctl status docker"),
    ("ci", "systemctl reload nginx"),
    ("ci", "systemctl restart docker"),
    ("ci", "systemctl stop myapp"),
    ("ci", "journalctl -u app --since '1 hour ago' --no-pager"),
    ("ci", "kill -HUP $(cat /run/nginx.pid)"),
    ("ci", "pkill -f 'node server.js'"),
    ("ci", "truncate -s0 /var/log/app/app.log"),
    (
        "ci",
        "curl -fsSL https://api.github.com/repos/x/y/releases/latest",
    ),
    ("ci", "curl -sf http://localhost:8080/health"),
    // Archives and artifacts.
    ("ci", "tar -czf dist.tgz dist/"),
    ("ci", "tar -xzf artifact.tgz -C build/"),
    ("ci", "rsync -az dist/ deploy@web1:/srv/app/releases/42/"),
    ("ci", "rsync -a --delete dist/ /srv/www/html/"),
    (
        "ci",
        "rsync -a --delete build/ /home/runner/work/_temp/site/",
    ),
    ("ci", "pg_dump -Fc app > /backups/app-$(date +%F).dump"),
    ("ci", "cp build/app.jar /opt/app/app.jar"),
    ("ci", "ln -sfn /srv/app/releases/42 /srv/app/current"),
    (
        "ci",
        "truncate -s0 /var/lib/docker/containers/abc/abc-json.log",
    ),
    ("ci", "docker stop $(docker ps -q --filter name=build-)"),
    (
        "ci",
        "rsync -av --delete src/ deploy@host:/home/deploy/app/",
    ),
    ("ci", "rsync -a --delete ./public/ /var/www/html/"),
    ("ci", "kill $(cat /tmp/server.pid)"),
    ("ci", "docker system prune -af"),
    ("ci", "rm -rf /opt/hostedtoolcache/node/18.0.0"),
    // No-op modes of publishing and deploying tools.
    ("dry-run", "npm publish --dry-run"),
    ("dry-run", "pnpm publish --dry-run --no-git-checks"),
    ("dry-run", "yarn npm publish --dry-run"),
    ("dry-run", "cargo publish --dry-run"),
    ("dry-run", "git push --dry-run --force origin feature-x"),
    ("dry-run", "git push -n --force origin main"),
    (
        "dry-run",
        "kubectl delete deploy api -n prod --dry-run=client",
    ),
    ("dry-run", "kubectl delete ns old --dry-run=server"),
    ("dry-run", "helm uninstall api -n staging --dry-run"),
    ("dry-run", "rsync -an --delete dist/ /var/lib/app/"),
    ("dry-run", "git clean -n -fdx /srv/app"),
    // Temporary directories.
    ("temp", "rm -rf \"$TMPDIR/cache\""),
    ("temp", "rm -rf \"$RUNNER_TEMP\"/build"),
    ("temp", "rm -rf ${TMPDIR}/pip-*"),
    ("temp", "rm -rf \"$TEMP/x\""),
    ("temp", "rm -rf /tmp/build-cache"),
    ("temp", "rm -rf \"/tmp/ci-$CI_JOB_ID\""),
    ("temp", "d=$(mktemp -d); rm -rf \"$d\""),
    ("temp", "tmp=$(mktemp); echo x > \"$tmp\"; rm -f \"$tmp\""),
    ("temp", "rm -rf \"${RUNNER_TEMP:?}/cache\""),
    ("temp", "rm -rf \"${TMPDIR:-/tmp}/cache\""),
    ("temp", "rm -rf \"$GITHUB_WORKSPACE/dist\""),
    ("temp", "rm -rf $CI_PROJECT_DIR/.cache"),
    ("temp", "rm -rf ${WORKSPACE}/build"),
    ("temp", "rm -rf \"$(pwd)/build\""),
    ("temp", "rm -rf \"$PWD/dist\""),
    // One named pod or job, outside production.
    ("k8s-one", "kubectl delete pod api-7d9f-xk2 -n ci"),
    ("k8s-one", "kubectl delete job migrate -n staging"),
    ("k8s-one", "kubectl delete pod/runner-abc -n ci"),
    ("k8s-one", "kubectl -n staging delete job/seed-db"),
    (
        "k8s-one",
        "kubectl delete pod stuck-0 -n ci --grace-period=0 --force",
    ),
    ("k8s-one", "kubectl delete jobs.batch smoke -n staging"),
    ("k8s-one", "kubectl delete po web-1 --namespace=dev"),
    ("k8s-one", "oc delete pod build-1-abc -n ci"),
    // Force-pushing a feature branch with a lease.
    (
        "feature-push",
        "git push --force-with-lease origin feature-x",
    ),
    (
        "feature-push",
        "git push --force-with-lease origin HEAD:feature/login",
    ),
    (
        "feature-push",
        "git push --force-with-lease=fix-42 origin fix-42",
    ),
    (
        "feature-push",
        "git push origin --force-with-lease renovate/npm-deps",
    ),
    (
        "feature-push",
        "git push --force-if-includes --force-with-lease origin topic/x",
    ),
    (
        "feature-push",
        "git push -u --force-with-lease origin dependabot/cargo/serde",
    ),
];

/// Still high or refused near the false alarms above: the limits of those classes.
const STILL_HIGH: &[&str] = &[
    "npm publish",
    "git push --force origin main",
    "git push --force-with-lease origin main",
    "git push --force-with-lease origin release/2.1",
    "git push --force-with-lease",
    "git push --force-with-lease origin HEAD",
    "kubectl delete ns ci",
    "kubectl delete deploy api -n prod",
    "kubectl delete pod --all -n ci",
    "kubectl delete pods -A",
    "kubectl delete pod -l app=api -n ci",
    "kubectl delete pod api-0 -n prod",
    "kubectl delete pod api-0",
    "git push --force origin feature-x",
    "kubectl delete pod a b c d -n ci",
    "kubectl delete deploy api -n prod --dry-run=none",
    "rm -rf \"$TMPDIR/\"*",
    "rm -rf \"$TMPDIR/../etc\"",
    // Both empty, this is `rm -rf /`.
    "rm -rf \"$AGENT_TEMPDIRECTORY/$BUILD_ID\"",
    "rm -rf \"${TMPDIR:-/}\"etc",
    "rm -rf \"$GITHUB_WORKSPACE\"/*",
    "cd /srv && rm -rf \"$PWD/data\"",
    "rm -rf \"$(pwd)\"/*",
    "rm -rf \"$SOMEDIR/cache\"",
    "rm -rf \"/srv/app/$X\"",
    "TMPDIR=/; rm -rf \"$TMPDIR\"var/lib/mysql",
    // A control character written into the script is not the temporary directory's mark.
    "rm -rf \"$Y\"$'\\x04'/var/lib/mysql",
    "X=$'\\x04'; rm -rf \"$Y$X/var/lib/mysql\"",
    "rm -rf \"/var/lib/mysql/$DB\"",
    "echo x > \"/var/lib/mysql/$F\"",
];

fn caught(level: Risk) -> bool {
    level >= Risk::High
}

/// One class's figures: how many were rated as wanted, of how many, and the others.
struct Class {
    name: String,
    good: usize,
    total: usize,
    wrong: Vec<String>,
}

/// Per class, in the order the corpus gives them.
fn tally(cases: &[(&str, &str)], good: impl Fn(Risk) -> bool) -> Vec<Class> {
    let mut out: Vec<Class> = vec![];
    for (class, script) in cases {
        let a = assess_script(script);
        let i = match out.iter().position(|c| c.name == *class) {
            Some(i) => i,
            None => {
                out.push(Class {
                    name: class.to_string(),
                    good: 0,
                    total: 0,
                    wrong: vec![],
                });
                out.len() - 1
            }
        };
        out[i].total += 1;
        if good(a.level) {
            out[i].good += 1;
        } else {
            let line = format!("{script:?}: {} ({})", risk_name(a.level), a.reason);
            out[i].wrong.push(line);
        }
    }
    out
}

/// Prints `count/total` per class (`count` is what `show` makes of a class) and the wrong ones.
fn report(title: &str, t: &[Class], show: impl Fn(&Class) -> usize) -> (usize, usize) {
    let count: usize = t.iter().map(&show).sum();
    let total: usize = t.iter().map(|c| c.total).sum();
    println!("{title}: {count}/{total}");
    for c in t {
        println!("  {}: {}/{}", c.name, show(c), c.total);
        for w in &c.wrong {
            println!("    {w}");
        }
    }
    (count, total)
}

#[test]
fn destructive_commands_are_caught_in_every_class() {
    let t = tally(DESTRUCTIVE, caught);
    let (hits, total) = report("destructive caught", &t, |c| c.good);
    for c in &t {
        assert!(c.total >= 8, "{} has only {} cases", c.name, c.total);
        assert!(
            c.good * 100 >= c.total * 98,
            "{}: {}/{} caught; missed:\n{}",
            c.name,
            c.good,
            c.total,
            c.wrong.join("\n")
        );
    }
    assert!(hits * 100 >= total * 98, "{hits}/{total} caught");
}

#[test]
fn everyday_commands_raise_no_alarm_in_any_class() {
    let t = tally(EVERYDAY, |l| !caught(l));
    let (alarms, total) = report("everyday false alarms", &t, |c| c.total - c.good);
    let ci = t.iter().find(|c| c.name == "ci").map_or(0, |c| c.total);
    assert!(ci >= 60, "{ci} everyday CI/ops commands, want 60 or more");
    for c in &t {
        assert!(
            c.wrong.len() * 100 <= c.total * 2,
            "{}: {}/{} false alarms:\n{}",
            c.name,
            c.wrong.len(),
            c.total,
            c.wrong.join("\n")
        );
    }
    assert!(alarms * 100 <= total * 2, "{alarms}/{total} false alarms");
}

#[test]
fn the_limits_of_the_lowered_classes_stay_high() {
    let wrong: Vec<String> = STILL_HIGH
        .iter()
        .map(|s| (s, assess_script(s)))
        .filter(|(_, a)| !caught(a.level))
        .map(|(s, a)| format!("{s:?}: {} ({})", risk_name(a.level), a.reason))
        .collect();
    assert!(wrong.is_empty(), "not high:\n{}", wrong.join("\n"));
}
