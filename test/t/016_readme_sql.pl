# Every SQL block of README.md runs as typed, in order, in one psql session
# on a fresh cluster (ON_ERROR_STOP), after the shell steps the README gives
# (samples/tools.sql loaded; the bundled mock with the demo's script). The
# only change: the public provider endpoints (api.openai.com,
# api.anthropic.com) and the mock's port 8089 point at the test's mock LLM
# server, since tests reach nothing but loopback.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use AgentorchLLM;

my $readme = $ENV{AO_README} // "$FindBin::Bin/../../README.md";
ok(-r $readme, "README.md is readable ($readme)") or BAIL_OUT('no README.md');
my $text = slurp_file($readme);
my @blocks = $text =~ /^```sql\n(.*?)^```/msg;
cmp_ok(scalar @blocks, '>=', 3, 'README.md has SQL blocks (' . scalar(@blocks) . ')');

my $samples = $ENV{AO_SAMPLES} || "$FindBin::Bin/../../samples";
my $mock = mock_start('../mock_llm/scripts/demo.json');
my $node = llm_node('readme');
{
	local $ENV{OPENAI_API_KEY} = 'sk-readme-test-key';
	local $ENV{ANTHROPIC_API_KEY} = 'sk-ant-readme-test-key';
	$node->start;
}
my $sql = join("\n", @blocks);
$sql =~ s{https://api\.openai\.com/v1}{$mock->{url}/v1}g;
$sql =~ s{https://api\.anthropic\.com}{$mock->{url}}g;
$sql =~ s{http://127\.0\.0\.1:8089}{$mock->{url}}g;
$sql = "CREATE EXTENSION IF NOT EXISTS agentorch;\n\\i $samples/tools.sql\n" . $sql;

my ($out, $err) = ('', '');
my $rc = $node->psql('postgres', $sql, stdout => \$out, stderr => \$err, on_error_stop => 1,
	extra_params => [ '-v', 'ON_ERROR_STOP=1' ]);
is($rc, 0, 'every SQL block of README.md runs without an error') or diag("stderr:\n$err\nstdout:\n$out");
unlike($err, qr/ERROR/, 'no ERROR was printed');

# what the getting-started section promises
is($node->safe_psql('postgres', "SELECT status FROM agentorch.runs WHERE workflow_name IS NULL ORDER BY id LIMIT 1"),
	'succeeded', 'the one question was answered');
is($node->safe_psql('postgres', "SELECT status FROM agentorch.runs WHERE workflow_name = 'triage' ORDER BY id DESC LIMIT 1"),
	'succeeded', 'the triage run escalated, got its input and succeeded');
like($node->safe_psql('postgres', "SELECT output::text FROM agentorch.runs WHERE workflow_name = 'triage' ORDER BY id DESC LIMIT 1"),
	qr/approved/, 'with the submitted answer in its output');
is($node->safe_psql('postgres', "SELECT count(*) FROM agentorch.models"), '5',
	'the provider examples registered their models');
is($node->safe_psql('postgres', "SELECT string_agg((options->>'llm_mode') || ':' || status, ',' ORDER BY id) FROM agentorch.runs WHERE options ? 'llm_mode'"),
	'record:succeeded,replay:succeeded', 'the record and replay example recorded a run and replayed it');
is($node->safe_psql('postgres', "SELECT count(*) FROM agentorch.llm_cache WHERE request_hash LIKE 'llm:%'"), '1',
	'with one recording');
is($node->safe_psql('postgres', "SELECT string_agg(orchestration || ':' || status, ',' ORDER BY id) FROM agentorch.runs WHERE orchestration IN ('planner', 'reactive')"),
	'planner:succeeded,reactive:succeeded', 'the planner and reactive examples succeeded');
is($node->safe_psql('postgres', "SELECT string_agg(p.reason, ',' ORDER BY r.id, p.version) FROM agentorch.plans p JOIN agentorch.runs r ON r.id = p.run_id"),
	'initial,initial,condition', 'with their plans (the reactive one revised by its condition)');

$node->stop;
done_testing();
