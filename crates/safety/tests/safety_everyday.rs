//! Everyday heals and diagnostics must stay low (or medium where they change a file or stop
//! one thing): a safety check that refuses these is useless to a self-healing pipeline.

use pipeguard_safety::{assess, assess_script, risk_name};
use pipeguard_taxonomy::Risk;

use Risk::{Low, Medium};

const CASES: &[(&str, Risk)] = &[
    // Packages and services.
    ("apt-get install -y nginx", Low),
    (
        "sudo apt-get update && sudo apt-get install -y --no-install-recommends libpq5",
        Low,
    ),
    ("yum install -y httpd", Low),
    ("apk add --no-cache curl", Low),
    ("pip install -r requirements.txt", Low),
    ("python3 -m pip install --upgrade pip", Low),
    ("npm ci", Low),
    ("npm install --no-audit", Low),
    ("yarn install --frozen-lockfile", Low),
    ("cargo build --release", Low),
    ("go build ./...", Low),
    ("mvn -B -q test", Low),
    ("gradle build --no-daemon", Low),
    ("make test", Low),
    ("systemctl restart nginx", Low),
    (
        "sudo systemctl daemon-reload && sudo systemctl restart app.service",
        Low,
    ),
    ("systemctl status postgresql", Low),
    ("service redis-server reload", Low),
    ("journalctl -u nginx -n 200 --no-pager", Low),
    // Kubernetes, read and follow.
    ("kubectl get pods -n prod", Low),
    ("kubectl get pods -A -o wide", Low),
    ("kubectl describe pod api-0 -n prod", Low),
    ("kubectl logs -f deploy/api --since=10m", Low),
    ("kubectl logs api-0 -c app --previous", Low),
    ("kubectl rollout status deploy/api -n prod", Low),
    ("kubectl rollout history deploy/api", Low),
    ("kubectl get events --sort-by=.lastTimestamp", Low),
    ("kubectl top pods -n prod", Low),
    ("kubectl exec api-0 -- ls /app", Low),
    ("kubectl exec -it api-0 -c app -- cat /etc/os-release", Low),
    ("kubectl exec api-0 -- sh -c 'ps aux | grep java'", Low),
    ("helm list -A", Low),
    ("helm status api -n prod", Low),
    // Docker.
    ("docker ps -a", Low),
    ("docker logs --tail 100 web", Low),
    ("docker inspect web", Low),
    ("docker images", Low),
    ("docker pull nginx:1.25", Low),
    ("docker compose ps", Low),
    ("docker compose logs --tail=50 web", Low),
    ("docker exec web nginx -t", Medium),
    ("docker run --rm alpine:3 echo ok", Low),
    ("docker restart web", Low),
    // Git and forges.
    ("git fetch --all --prune", Low),
    ("git status --porcelain", Low),
    ("git log -1 --format=%H", Low),
    ("git diff --stat", Low),
    ("git rev-parse HEAD", Low),
    ("git pull --rebase=false", Low),
    ("gh run list --limit 5", Low),
    ("gh pr view 42", Low),
    ("gh run rerun 123 --failed", Low),
    // Infrastructure as code and clouds, reading.
    ("terraform init -input=false", Medium),
    ("terraform plan -out=tfplan", Low),
    ("terraform validate", Low),
    ("terraform fmt -check", Low),
    ("terraform plan -destroy", Low),
    ("aws s3 ls s3://bucket", Low),
    ("aws sts get-caller-identity", Low),
    (
        "aws ec2 describe-instances --filters Name=tag:env,Values=prod",
        Low,
    ),
    ("aws logs tail /aws/lambda/fn --since 10m", Low),
    ("gcloud compute instances list", Low),
    (
        "gcloud container clusters get-credentials prod --region europe-west1",
        Low,
    ),
    ("az vm list -o table", Low),
    ("pulumi preview", Low),
    // Databases, reading.
    ("psql -c 'SELECT 1'", Low),
    (
        "psql -h db -U app -d app -c \"select count(*) from jobs where state = 'failed'\"",
        Low,
    ),
    ("mysql -e 'SHOW DATABASES'", Low),
    ("mysql -e 'SELECT TRUNCATE(1.234, 1)'", Low),
    ("redis-cli PING", Low),
    ("redis-cli -h cache INFO memory", Low),
    ("redis-cli GET session:42", Low),
    ("mongosh --quiet --eval 'db.stats()'", Low),
    ("pg_isready -h db", Medium),
    // The host, reading.
    ("df -h", Low),
    ("free -m", Low),
    ("ps aux --sort=-%mem | head", Low),
    ("ss -tlnp", Low),
    ("uptime", Low),
    ("curl -fsS http://localhost:8080/health", Low),
    (
        "curl -s -o /dev/null -w '%{http_code}' https://example.com",
        Low,
    ),
    ("wget -q -O - http://localhost/health", Low),
    ("ping -c 1 db", Low),
    ("dig +short example.com", Low),
    ("nc -z db 5432", Low),
    ("ssh host uptime", Low),
    (
        "ssh -o BatchMode=yes deploy@host 'systemctl is-active app'",
        Low,
    ),
    ("cat /var/log/syslog | grep -i error | tail -n 50", Low),
    ("find /var/log -name '*.log' -mtime +7", Low),
    ("echo done", Low),
    ("command -v docker", Low),
    ("command -v reboot", Low),
    ("type kubectl", Low),
    ("for s in nginx php-fpm; do systemctl restart $s; done", Low),
    (
        "if ! systemctl is-active --quiet nginx; then systemctl start nginx; fi",
        Low,
    ),
    ("x=$(cat /etc/hostname); echo \"$x\"", Low),
    ("(( retries++ )); sleep 5", Low),
    ("[ -f /tmp/lock ] || echo none", Low),
    ("[[ -d node_modules ]] || npm ci", Low),
    ("bash -c 'echo > /dev/tcp/db/5432'", Low),
    (
        "timeout 30 bash -c 'until curl -fs localhost:8080; do sleep 1; done'",
        Low,
    ),
    ("echo aGVsbG8= | base64 -d", Low),
    (
        "docker run --rm -v $(pwd):/src -w /src node:20 npm test",
        Low,
    ),
    ("ls | xargs -I{} echo {}", Low),
    ("find . -type f -name '*.log' -exec gzip {} \\;", Low),
    ("npm cache clean --force", Low),
    ("sudo -u postgres psql -c 'VACUUM ANALYZE'", Low),
    ("cd /srv/app && git pull && npm ci", Low),
    ("for h in web1 web2; do ssh $h uptime & done; wait", Low),
    ("ansible all -m ping", Low),
    ("ansible web -m apt -a 'name=nginx state=present' -b", Low),
    (
        "ansible web -m service -a 'name=nginx state=restarted' -b",
        Low,
    ),
    // Changes to one thing: medium.
    ("[ -f /tmp/lock ] && rm /tmp/lock", Medium),
    ("find /tmp -type f -mtime +7 -exec rm -f {} \\;", Medium),
    ("find . -name '*.pyc' -delete", Medium),
    ("find /var/log -name '*.gz' -mtime +30 -delete", Medium),
    ("cd /srv/app && rm -rf node_modules", Medium),
    ("source venv/bin/activate", Medium),
    ("curl -X DELETE http://localhost:8080/cache", Medium),
    ("git push --tags", Medium),
    ("rm -rf /tmp/build-cache", Medium),
    ("rm -f /var/lib/postgresql/16/main/postmaster.pid", Medium),
    ("rm -rf node_modules", Medium),
    ("systemctl stop nginx", Medium),
    ("kill 4242", Medium),
    ("git reset --hard origin/main && git clean -fdx", Medium),
    ("git branch -D main", Medium),
    ("git push origin feature/x", Medium),
    ("docker rm -f web", Medium),
    ("docker image prune -af", Medium),
    ("kubectl rollout restart deploy/api -n prod", Medium),
    ("kubectl apply -f deploy.yaml", Medium),
    ("helm upgrade --install api ./chart -n prod", Medium),
    ("terraform apply -auto-approve tfplan", Medium),
    ("redis-cli DEL cache:key", Medium),
    ("varnishadm ban req.url '~' .", Medium),
    ("psql -f migrate.sql", Medium),
    ("gh cache delete --all", Medium),
    ("aws s3 cp build.tar s3://bucket/artifacts/", Medium),
    ("kind delete cluster", Medium),
    ("sed -i 's/8080/9090/' /srv/app/config.yml", Medium),
    ("X=/tmp/x sh -c 'rm -rf $X'", Medium),
    (
        "ansible web -m service -a 'name=nginx state=stopped' -b",
        Medium,
    ),
];

#[test]
fn everyday_heals_stay_low() {
    let mut wrong = vec![];
    for (script, want) in CASES {
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

#[test]
fn argv_form_of_everyday_heals() {
    let argv = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(assess(&argv(&["kubectl", "get", "pods"])).level, Low);
    assert_eq!(assess(&argv(&["psql", "-c", "SELECT 1"])).level, Low);
    assert_eq!(
        assess(&argv(&["kubectl", "exec", "pod", "--", "rm", "-rf", "/"])).level,
        Risk::Refused
    );
    assert_eq!(
        assess(&argv(&["redis-cli", "-n", "0", "flushall"])).level,
        Risk::Refused
    );
}
