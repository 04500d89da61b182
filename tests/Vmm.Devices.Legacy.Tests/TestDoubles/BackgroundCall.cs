namespace Vmm.Devices.Legacy.Tests.TestDoubles;

/// <summary>Runs a blocking call on its own thread (a stand-in for the console reader thread).</summary>
internal sealed class BackgroundCall<T>
{
    private readonly Thread _thread;
    private T? _result;
    private Exception? _error;

    public BackgroundCall(Func<T> call)
    {
        _thread = new Thread(() =>
        {
            try
            {
                _result = call();
            }
            catch (Exception e)
            {
                _error = e;
            }
        }) { IsBackground = true };
        _thread.Start();
    }

    /// <summary>Waits for the call; false on timeout. Rethrows what the call threw.</summary>
    public bool Join(TimeSpan timeout)
    {
        if (!_thread.Join(timeout))
        {
            return false;
        }
        if (_error is not null)
        {
            throw new InvalidOperationException("background call failed", _error);
        }
        return true;
    }

    public T Result => _result!;
}
