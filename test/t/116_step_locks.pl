# Step locks: two steps with the same "lock" never run at once, across the
# executors of a database -- transactional steps (a function tool that
# notices a concurrent caller) and network steps (llm requests, counted by
# the mock's concurrency). The same runs without the lock do overlap, so the
# test can fail.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use AgentorchLLM;

my $mock = mock_start('simple.json', args => [ '--latency-ms', '300' ]);
my $node = llm_start(llm_node('locks', 'agentorch.max_workers = 3', 'agentorch.batch_size = 1'));
register_model($node, 'default', 'openai', $mock, { model => 'mock-locks' });
sql($node, q{
CREATE TABLE public.overlaps (tag text);
CREATE FUNCTION public.probe(input jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    -- another caller inside at the same time holds key 4242
    IF NOT pg_try_advisory_lock(4242) THEN
        INSERT INTO public.overlaps VALUES (input->>'tag');
        PERFORM pg_sleep(0.05);
        RETURN '{"overlap": true}';
    END IF;
    PERFORM pg_sleep(0.05);
    PERFORM pg_advisory_unlock(4242);
    RETURN '{"overlap": false}';
END $$;
SELECT agentorch.register_tool('probe', 'function', '{"function": "public.probe"}');
SELECT agentorch.register_workflow('locked', '{"steps": [{"id": "p", "type": "tool", "tool": "probe", "input": {"tag": "locked"}, "lock": "probe-lock"}]}');
SELECT agentorch.register_workflow('unlocked', '{"steps": [{"id": "p", "type": "tool", "tool": "probe", "input": {"tag": "unlocked"}}]}');
SELECT agentorch.register_workflow('locked-llm', '{"steps": [{"id": "ask", "type": "llm", "model": "default", "prompt": "simple-openai locked", "lock": "llm-lock"}]}');
SELECT agentorch.register_workflow('unlocked-llm', '{"steps": [{"id": "ask", "type": "llm", "model": "default", "prompt": "simple-openai unlocked"}]}');
});

sub run_all
{
	my ($wf, $n) = @_;
	my @ids = split /\n/, sql($node, "SELECT agentorch.run_workflow('$wf') FROM generate_series(1, $n)");
	my %st;
	$st{ wait_status($node, $_) }++ for @ids;
	return \%st;
}

# transactional steps
my $st = run_all('unlocked', 30);
is($st->{succeeded}, 30, 'without a lock: 30 runs succeeded');
my $control = sql($node, "SELECT count(*) FROM public.overlaps WHERE tag = 'unlocked'");
cmp_ok($control, '>', 0, "without a lock the tool ran concurrently ($control overlaps): the probe works");
$st = run_all('locked', 30);
is($st->{succeeded}, 30, 'with a lock: 30 runs succeeded');
is(sql($node, "SELECT count(*) FROM public.overlaps WHERE tag = 'locked'"), '0', 'with a lock the tool never ran concurrently');
is(sql($node, "SELECT max(attempt) FROM agentorch.steps s JOIN agentorch.runs r ON r.id = s.run_id WHERE r.workflow_name = 'locked'"),
	'1', 'a busy lock spends no attempt');

# network steps (the mock answers after 300 ms)
sql($node, q{UPDATE agentorch.models SET spec = spec || '{"max_concurrency": 64}' WHERE name = 'default'});
mock_reset($mock);
$st = run_all('unlocked-llm', 4);
is($st->{succeeded}, 4, 'llm without a lock: 4 runs succeeded');
cmp_ok(mock_get($mock, '/stats')->{concurrent_max}, '>', 1, 'llm without a lock: requests overlapped');
mock_reset($mock);
$st = run_all('locked-llm', 4);
is($st->{succeeded}, 4, 'llm with a lock: 4 runs succeeded');
is(mock_get($mock, '/stats')->{concurrent_max}, 1, 'llm with a lock: one request at a time');

# ------------------------------------------------ locks that outlive a transaction
# A network step's lock is held from its lease to the end of its attempt.
# A user's tool runs in an executor's session beside it, and
# pg_advisory_unlock_all() there must not release it (an ordinary role
# could then run two steps of another role's lock at once).
my $slow = mock_start('simple.json', args => [ '--latency-ms', '4000' ]);
register_model($node, 'slow', 'openai', $slow, { model => 'mock-slow' });
sql($node, q{
CREATE TABLE public.spans (tag text, t0 timestamptz, t1 timestamptz);
CREATE FUNCTION public.span(input jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN
    PERFORM pg_sleep(0.3);
    INSERT INTO public.spans VALUES (input->>'tag', t0, clock_timestamp());
    RETURN '{}';
END $$;
SELECT agentorch.register_tool('span', 'function', '{"function": "public.span"}');
SELECT agentorch.register_tool('unlock_all', 'sql', '{"sql": "SELECT pg_advisory_unlock_all() IS NULL AS done, pg_backend_pid() AS pid"}');
SELECT agentorch.register_workflow('unlocker', '{"steps": [{"id": "u", "type": "tool", "tool": "unlock_all"}]}');
SELECT agentorch.register_workflow('slow-locked', '{"steps": [{"id": "ask", "type": "llm", "model": "slow", "prompt": "simple-openai slow", "lock": "slow-lock"}]}');
SELECT agentorch.register_workflow('span-locked', '{"steps": [{"id": "s", "type": "tool", "tool": "span", "input": {"tag": "locked"}, "lock": "slow-lock"}]}');
SELECT agentorch.register_workflow('span-unlocked', '{"steps": [{"id": "s", "type": "tool", "tool": "span", "input": {"tag": "unlocked"}}]}');
});
sub held_by_pid
{
	my ($run) = @_;
	$node->poll_query_until('postgres', "SELECT status = 'running' FROM agentorch.steps WHERE run_id = $run", 't');
	return sql($node, "SELECT worker FROM agentorch.steps WHERE run_id = $run");
}
my $first = sql($node, q{SELECT agentorch.run_workflow('slow-locked')});
my $holder = held_by_pid($first);
is(sql($node, "SELECT value FROM agentorch.metrics() WHERE name = 'step_locks_held'"), '1',
	'the slow locked step holds its lock (metrics: step_locks_held)');
# unlock_all in every executor, the holder's among them
my $in_holder = 0;
for (1 .. 30)
{
	my $u = sql($node, q{SELECT agentorch.run_workflow('unlocker')});
	wait_status($node, $u);
	$in_holder = 1
	  if sql($node, "SELECT output->0->>'pid' FROM agentorch.steps WHERE run_id = $u") eq $holder;
	last if $in_holder;
}
ok($in_holder, "pg_advisory_unlock_all() ran in the executor holding the step's lock");
is(sql($node, "SELECT value FROM agentorch.metrics() WHERE name = 'step_locks_held'"), '1',
	'... and the lock is still held');
# a second step of that lock, an llm step and a transactional one, wait for the first
mock_reset($slow);
my $second = sql($node, q{SELECT agentorch.run_workflow('slow-locked')});
my $span = sql($node, q{SELECT agentorch.run_workflow('span-locked')});
my $control_run = sql($node, q{SELECT agentorch.run_workflow('span-unlocked')});
is(wait_status($node, $_), 'succeeded', "run $_ succeeded") for ($first, $second, $span, $control_run);
is(mock_get($slow, '/stats')->{concurrent_max}, 1, 'the two slow locked requests never overlapped');
my $overlap = q{SELECT count(*) FROM public.spans p, agentorch.events a, agentorch.events b
  WHERE p.tag = '%s' AND a.run_id = b.run_id AND a.run_id IN (%s) AND a.kind = 'step_started' AND b.kind = 'step_succeeded'
    AND p.t0 < b.at AND p.t1 > a.at};
cmp_ok(sql($node, sprintf($overlap, 'unlocked', "$first, $second")), '>=', 1,
	'without a lock the transactional step ran while a slow request was in flight (the check works)');
is(sql($node, sprintf($overlap, 'locked', "$first, $second")), '0',
	'with the lock it ran while neither slow locked request was in flight');

# a session advisory lock a tool takes in an executor goes with its step
sql($node, q{SELECT agentorch.register_tool('keep_lock', 'sql', '{"sql": "SELECT pg_advisory_lock(424242) IS NULL AS taken"}');
SELECT agentorch.register_workflow('locker', '{"steps": [{"id": "k", "type": "tool", "tool": "keep_lock"}]}');});
my $locker = sql($node, q{SELECT agentorch.run_workflow('locker')});
is(wait_status($node, $locker), 'succeeded', "a tool took a session advisory lock");
is(sql($node, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 424242"), '0',
	"... which the executor gave back with the step (another session is not left waiting for it)");

# every step lock was given back
is(sql($node, "SELECT value FROM agentorch.metrics() WHERE name = 'step_locks_held'"), '0',
	'no step lock is held once the runs are done');
ok(!crashed($node), 'no server process crashed');

done_testing();
