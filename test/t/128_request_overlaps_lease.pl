# A network step's lease and its request (runner_net.c, ao_net_steps_claim):
#   - an llm step's request leaves while the lease's commit is still being
#     made durable: with every commit of the executor held (a synchronous
#     standby that never comes), the model receives the request while the
#     step still reads as ready to everyone else, and nothing of the reply
#     is written;
#   - an http tool's request, claimed in the same transaction, does not
#     leave until that commit is done (its side effects follow a counted
#     attempt);
#   - once commits go through, both runs finish with one request each, one
#     attempt each, and the reply streamed in full;
#   - an executor killed while its lease's commit waits (the request gone
#     out) takes nothing with it: after the crash restart the run finishes
#     with the reply streamed once;
#   - a claim whose commit keeps failing sends the model one request, not
#     one per try: after a failed claim, requests wait for the commit until
#     a claim commits again; and the step lock of a step still running in
#     that executor stays held through the failures.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use FindBin;
use lib $FindBin::Bin;
use AgentorchLLM;
use AgentorchTest;

my $mock = mock_start('overlap.json');
# one executor, so that both steps are claimed in one transaction
# (a synchronous standby needs WAL senders, and they need wal_level replica)
my $node = llm_start(llm_node('overlap', 'agentorch.max_workers = 1', "agentorch.http_allowed_hosts = '127.0.0.1'",
	'wal_level = replica', 'max_wal_senders = 2'));
register_model($node, 'gpt', 'openai', $mock, { model => 'mock-gpt' });
sql($node, "SELECT agentorch.register_tool('post_it', 'http', "
	  . json_in({ method => 'POST', url => "$mock->{url}/v1/chat/completions" }) . ')');
sql($node, "SELECT agentorch.register_workflow('post', "
	  . json_in({ steps => [ { id => 'post', type => 'tool', tool => 'post_it',
		input => { model => 'mock-gpt', stream => JSON::PP::false,
			messages => [ { role => 'user', content => 'overlap-http: please' } ] } } ] }) . ')');
sql($node, 'CREATE TABLE probe (x int)');

# requests the mock received, by rule
sub received
{
	my ($rule) = @_;
	return scalar grep { ($_->{rule} // '') eq $rule } @{ mock_requests($mock) };
}

# The executor's connection to the model is kept alive from a first run (a
# request on a new connection leaves once the connection is made, after
# the commit: nothing in a transaction waits for the network).
my $warm = start_run($node, { prompt => 'overlap-llm: warm up' }, { model => 'gpt' });
is(wait_status($node, $warm), 'succeeded', 'a first llm run succeeds');
is(received('overlap_llm'), 1, 'the model received its request');

# Hold every commit that waits for a synchronous standby (one that never
# comes), or let them go through again.
sub hold_commits
{
	$node->append_conf('postgresql.conf', "synchronous_standby_names = 'nobody'");
	$node->reload;
	# the setting is in force once a synchronous commit waits for the standby
	my $probe = $node->background_psql('postgres', on_error_stop => 0);
	$probe->query_until(qr/probing/, "\\echo probing\nINSERT INTO probe VALUES (1);\n");
	ok($node->poll_query_until('postgres',
		"SELECT count(*) > 0 FROM pg_stat_activity WHERE wait_event = 'SyncRep' AND query LIKE 'INSERT INTO probe%'"),
		'a synchronous commit now waits for the standby');
	sql($node, "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE 'INSERT INTO probe%' AND pid <> pg_backend_pid()");
	$probe->quit;
}

sub release_commits
{
	$node->append_conf('postgresql.conf', "synchronous_standby_names = ''");
	$node->reload;
}

# until the model has received n requests of a rule
sub wait_received
{
	my ($rule, $n) = @_;
	my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
	usleep(50_000) while received($rule) < $n && time() < $deadline;
	return received($rule);
}

hold_commits();

# both runs become visible in one commit (this session's is local only)
my ($llm_run, $http_run) = split /\|/, sql($node, q{
	SET synchronous_commit = local;
	SELECT agentorch.start('{"prompt": "overlap-llm: say it"}', 'simple', NULL, '{"model": "gpt"}'),
	       agentorch.run_workflow('post')});
ok($llm_run && $http_run, 'two runs started');

# the model receives its request while the claim's commit waits
is(wait_received('overlap_llm', 2), 2, "the llm step's request reached the model while the lease's commit waits");
ok($node->poll_query_until('postgres',
	"SELECT count(*) > 0 FROM pg_stat_activity WHERE wait_event = 'SyncRep' AND backend_type LIKE 'agentorch executor%'"),
	"the executor's commit is waiting for the standby");
is(sql($node, "SELECT status FROM agentorch.steps WHERE run_id = $llm_run"), 'ready',
	'to everyone else the llm step is still ready: its lease is not committed');
is(sql($node, "SELECT count(*) FROM agentorch.chunks WHERE run_id = $llm_run AND kind = 'token'"), '0',
	'nothing of the reply is written before the lease commits');
is(sql($node, "SELECT count(*) FROM agentorch.steps WHERE run_id = $http_run AND status = 'ready'"), '1',
	'the http step was claimed in the same transaction, not committed either');
# (a request would have arrived by now: the llm request, sent in the same
# moment, already has; the http tool's goes out only after the commit)
is(received('overlap_http'), 0, "the http tool's request has not left: it waits for the lease's commit");

# ---- commits go through again
release_commits();
is(wait_status($node, $llm_run), 'succeeded', 'the llm run succeeds');
is(wait_status($node, $http_run), 'succeeded', 'the http run succeeds');
is(token_text($node, $llm_run), 'the model answered', 'the reply is streamed in full');
is(sql($node, "SELECT attempt FROM agentorch.steps WHERE run_id = $llm_run"), '1', 'the llm step took one attempt');
is(sql($node, "SELECT attempt FROM agentorch.steps WHERE run_id = $http_run"), '1', 'the http step took one attempt');
is(received('overlap_llm'), 2, 'the model received one request for it');
is(received('overlap_http'), 1, 'the http tool sent one request, after the commit');
is(sql($node, "SELECT count(DISTINCT (run_id, seq)) = count(*) FROM agentorch.chunks WHERE run_id IN ($llm_run, $http_run)"),
	't', 'no chunk was written twice');
ok(!crashed($node), 'no server process crashed');

# ---- a crash while the lease's commit waits, its request gone out
hold_commits();
my $crash_run = sql($node, q{
	SET synchronous_commit = local;
	SELECT agentorch.start('{"prompt": "overlap-llm: through a crash"}', 'simple', NULL, '{"model": "gpt"}')});
is(wait_received('overlap_llm', 3), 3, 'its request reached the model while the commit waits');
ok($node->poll_query_until('postgres',
	"SELECT count(*) > 0 FROM pg_stat_activity WHERE wait_event = 'SyncRep' AND backend_type LIKE 'agentorch executor%'"),
	"the executor's commit is waiting for the standby");
my $executor = sql($node,
	"SELECT pid FROM pg_stat_activity WHERE wait_event = 'SyncRep' AND backend_type LIKE 'agentorch executor%' LIMIT 1");
my $off = -s $node->logfile;
kill 'KILL', $executor;
$node->wait_for_log(qr/all server processes terminated; reinitializing/, $off);
ok($node->poll_query_until('postgres', 'SELECT 1', '1'), 'the server is back after the crash restart');
release_commits();
is(ao_wait_run($node, 'postgres', $crash_run, '60s'), 'succeeded', 'the run finishes after the crash');
is(token_text($node, $crash_run), 'the model answered', 'its reply is streamed once, in full');
cmp_ok(sql($node, "SELECT attempt FROM agentorch.steps WHERE run_id = $crash_run"), '<=', 2,
	'at most the attempt the crash took and one more');
is(sql($node, "SELECT count(*) FROM agentorch.chunks WHERE run_id = $crash_run AND kind = 'final'"), '1',
	'one final chunk');

# ---- a claim whose commit fails, again and again (a superuser's deferred trigger)
# Four slow requests at once leave four kept-alive connections to the
# model, so each failed claim could send its request at once on one.
sql($node, "SELECT agentorch.register_workflow('warm4', "
	  . json_in({ steps => [ map { { id => "w$_", type => 'llm', model => 'gpt', prompt => "overlap-warm $_" } } 1 .. 4 ] })
	  . ')');
my $warm4 = start_run($node, {}, { workflow => 'warm4' });
is(ao_wait_run($node, 'postgres', $warm4, '60s'), 'succeeded', 'four requests at once succeed');
# a step holding a step lock, its slow request in flight through the failures below
sql($node, "SELECT agentorch.register_workflow('locked', "
	  . json_in({ steps => [ { id => 'slow', type => 'llm', model => 'gpt', prompt => 'overlap-slow', lock => 'L1' } ] }) . ')');
my $locked = start_run($node, {}, { workflow => 'locked' });
my $step_lock = "SELECT value::int FROM agentorch.metrics() WHERE name = 'step_locks_held'";
ok($node->poll_query_until('postgres', "SELECT ($step_lock) > 0 AND
	(SELECT status = 'running' FROM agentorch.steps WHERE run_id = $locked)", 't'),
	'the locked step runs, its executor holding the step lock');
sql($node, q{
	CREATE TABLE refuse (on_ boolean);
	INSERT INTO refuse VALUES (true);
	CREATE FUNCTION refuse_lease() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		IF EXISTS (SELECT 1 FROM public.refuse) THEN
			RAISE EXCEPTION 'lease refused (test)';
		END IF;
		RETURN NEW;
	END $$;
	CREATE CONSTRAINT TRIGGER refuse_lease AFTER UPDATE ON agentorch.steps DEFERRABLE INITIALLY DEFERRED
		FOR EACH ROW WHEN (NEW.status = 'running') EXECUTE FUNCTION refuse_lease();});
my $before = received('overlap_llm');
$off = -s $node->logfile;
my $refused = start_run($node, { prompt => 'overlap-llm: refused' }, { model => 'gpt' });
for (1 .. 4)
{
	$node->wait_for_log(qr/lease refused \(test\)/, $off);
	$off = -s $node->logfile;
}
is(sql($node, "SELECT status || '/' || attempt FROM agentorch.steps WHERE run_id = $refused"), 'ready/0',
	'the claims failed four times: the step is ready, no attempt counted');
is(sql($node, "SELECT status FROM agentorch.steps WHERE run_id = $locked"), 'running', 'the locked step is still running');
is(sql($node, $step_lock), '1', 'and its step lock is still held after the failed iterations');
cmp_ok(received('overlap_llm') - $before, '<=', 1, 'the model received at most one request for it, not one per try');
sql($node, 'DELETE FROM refuse');
is(ao_wait_run($node, 'postgres', $refused, '60s'), 'succeeded', 'once the commit goes through the run succeeds');
is(token_text($node, $refused), 'the model answered', 'with its reply');
is(ao_wait_run($node, 'postgres', $locked, '60s'), 'succeeded', 'the locked step finishes');
is(sql($node, $step_lock), '0', 'and gives its step lock back');
sql($node, 'DROP TRIGGER refuse_lease ON agentorch.steps');

done_testing();
