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

# every step lock was given back (advisory locks of field4 0xA0 = 160)
is(sql($node, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 160"), '0',
	'no step lock is held once the runs are done');
ok(!crashed($node), 'no server process crashed');

done_testing();
