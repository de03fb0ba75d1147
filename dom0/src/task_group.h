// Threads for operations that block (a VM's start, a shutdown's wait), one per
// task, joined when done: tasks on different VMs never wait for each other.
#pragma once

#include <condition_variable>
#include <functional>
#include <list>
#include <mutex>
#include <thread>
#include <vector>

namespace atl::dom0 {

class TaskGroup {
public:
    TaskGroup() = default;
    ~TaskGroup() { wait(); }
    TaskGroup(const TaskGroup&) = delete;
    TaskGroup& operator=(const TaskGroup&) = delete;

    void spawn(std::function<void()> task) {
        std::lock_guard lock(mutex_);
        join_finished_locked();
        auto slot = threads_.emplace(threads_.end());
        ++running_;
        *slot = std::thread([this, slot, task = std::move(task)] {
            task();
            std::lock_guard lock(mutex_);
            finished_.push_back(slot);
            --running_;
            done_.notify_all();
        });
    }

    // Waits for every task spawned so far (and any they spawn).
    void wait() {
        std::unique_lock lock(mutex_);
        done_.wait(lock, [this] { return running_ == 0; });
        join_finished_locked();
    }

private:
    void join_finished_locked() {
        for (auto slot : finished_) {
            slot->join();  // returns at once: the task has ended but for its last unlock
            threads_.erase(slot);
        }
        finished_.clear();
    }

    std::mutex mutex_;
    std::condition_variable done_;
    std::list<std::thread> threads_;
    std::vector<std::list<std::thread>::iterator> finished_;
    int running_ = 0;
};

}  // namespace atl::dom0
